/* The JSON validator (jsonv.h). One loop over the text, no recursion: the
 * only state kept per level of nesting is one bit, whether it is an array
 * or an object, in a bit stack on the C stack. */
#include "jsonv.h"

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

struct scan {
    const unsigned char *s;
    size_t len;
    size_t pos; /* the next byte; on failure, where the text went wrong */
};

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static void skip_ws(struct scan *sc)
{
    while (sc->pos < sc->len && is_ws(sc->s[sc->pos]))
        sc->pos++;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The code unit of the \uXXXX escape whose 'u' is at sc->pos; moves past
 * it. -1 (sc->pos at the first byte that is not a hex digit) if there is
 * none. */
static long unicode_escape(struct scan *sc)
{
    long unit = 0;
    sc->pos++;
    for (int i = 0; i < 4; i++, sc->pos++) {
        int h = sc->pos < sc->len ? hex_value(sc->s[sc->pos]) : -1;
        if (h < 0)
            return -1;
        unit = unit << 4 | h;
    }
    return unit;
}

/* A string whose opening quote is at sc->pos. An object key may not hold
 * \u0000 (jansson keeps keys as C strings and refuses one). */
static int string(struct scan *sc, bool key)
{
    const unsigned char *s = sc->s;
    sc->pos++;
    for (;;) {
        /* The common case first: printable ASCII that needs no escape. */
        while (sc->pos < sc->len && s[sc->pos] >= 0x20 && s[sc->pos] < 0x80 && s[sc->pos] != '"' &&
               s[sc->pos] != '\\')
            sc->pos++;
        if (sc->pos >= sc->len)
            return JSONV_SYNTAX;
        unsigned char c = s[sc->pos];
        if (c == '"') {
            sc->pos++;
            return JSONV_OK;
        }
        if (c < 0x20)
            return JSONV_SYNTAX; /* a raw control character, NUL included */
        if (c >= 0x80) {
            size_t n = util_utf8_seq_len(s + sc->pos, sc->len - sc->pos);
            if (n == 0)
                return JSONV_SYNTAX;
            sc->pos += n;
            continue;
        }
        /* A backslash. */
        sc->pos++;
        if (sc->pos >= sc->len)
            return JSONV_SYNTAX;
        c = s[sc->pos];
        if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
            c == 't') {
            sc->pos++;
            continue;
        }
        if (c != 'u')
            return JSONV_SYNTAX;
        size_t at = sc->pos - 1;
        long unit = unicode_escape(sc);
        if (unit < 0)
            return JSONV_SYNTAX;
        if (unit == 0 && key) {
            sc->pos = at;
            return JSONV_SYNTAX;
        }
        if (unit >= 0xdc00 && unit <= 0xdfff) {
            sc->pos = at; /* a low surrogate with no high one before it */
            return JSONV_SYNTAX;
        }
        if (unit >= 0xd800 && unit <= 0xdbff) {
            /* A high surrogate: the low one must follow at once. */
            size_t low_at = sc->pos;
            if (sc->len - sc->pos < 2 || s[sc->pos] != '\\' || s[sc->pos + 1] != 'u') {
                sc->pos = at;
                return JSONV_SYNTAX;
            }
            sc->pos++;
            long low = unicode_escape(sc);
            if (low < 0)
                return JSONV_SYNTAX;
            if (low < 0xdc00 || low > 0xdfff) {
                sc->pos = low_at;
                return JSONV_SYNTAX;
            }
        }
    }
}

/* A number (RFC 8259's grammar, of any size) starting at sc->pos. */
static int number(struct scan *sc)
{
    const unsigned char *s = sc->s;
    size_t n = sc->len;

    if (s[sc->pos] == '-')
        sc->pos++;
    if (sc->pos >= n || !is_digit(s[sc->pos]))
        return JSONV_SYNTAX;
    if (s[sc->pos] == '0') {
        sc->pos++;
        if (sc->pos < n && is_digit(s[sc->pos]))
            return JSONV_SYNTAX; /* no leading zeros */
    } else {
        while (sc->pos < n && is_digit(s[sc->pos]))
            sc->pos++;
    }
    if (sc->pos < n && s[sc->pos] == '.') {
        sc->pos++;
        if (sc->pos >= n || !is_digit(s[sc->pos]))
            return JSONV_SYNTAX;
        while (sc->pos < n && is_digit(s[sc->pos]))
            sc->pos++;
    }
    if (sc->pos < n && (s[sc->pos] == 'e' || s[sc->pos] == 'E')) {
        sc->pos++;
        if (sc->pos < n && (s[sc->pos] == '+' || s[sc->pos] == '-'))
            sc->pos++;
        if (sc->pos >= n || !is_digit(s[sc->pos]))
            return JSONV_SYNTAX;
        while (sc->pos < n && is_digit(s[sc->pos]))
            sc->pos++;
    }
    return JSONV_OK;
}

static int literal(struct scan *sc, const char *word)
{
    for (; *word; word++, sc->pos++)
        if (sc->pos >= sc->len || sc->s[sc->pos] != (unsigned char)*word)
            return JSONV_SYNTAX;
    return JSONV_OK;
}

/* A value that is not an array or an object, at sc->pos. */
static int scalar(struct scan *sc)
{
    switch (sc->s[sc->pos]) {
    case '"':
        return string(sc, false);
    case 't':
        return literal(sc, "true");
    case 'f':
        return literal(sc, "false");
    case 'n':
        return literal(sc, "null");
    default:
        return sc->s[sc->pos] == '-' || is_digit(sc->s[sc->pos]) ? number(sc) : JSONV_SYNTAX;
    }
}

/* An object member's key and colon, at sc->pos; leaves sc->pos at its
 * value. */
static int member_key(struct scan *sc)
{
    if (sc->pos >= sc->len || sc->s[sc->pos] != '"')
        return JSONV_SYNTAX;
    int r = string(sc, true);
    if (r < 0)
        return r;
    skip_ws(sc);
    if (sc->pos >= sc->len || sc->s[sc->pos] != ':')
        return JSONV_SYNTAX;
    sc->pos++;
    skip_ws(sc);
    return JSONV_OK;
}

int jsonv_check(const char *buf, size_t len, const struct jsonv_limits *lim, size_t *ret_offset)
{
    struct scan sc = {(const unsigned char *)buf, len, 0};
    /* Bit d set: the container open at depth d (0-based) is an object. */
    unsigned char is_object[JSONV_DEPTH_MAX / 8];
    size_t max_depth = lim && lim->max_depth && lim->max_depth < JSONV_DEPTH_MAX ? lim->max_depth
                                                                                 : JSONV_DEPTH_MAX;
    size_t max_values = lim ? lim->max_values : 0;
    size_t depth = 0, values = 0;
    int r;

    skip_ws(&sc);
    for (;;) {
        /* A value starts here (whitespace before it skipped). */
        if (sc.pos >= sc.len) {
            r = JSONV_SYNTAX;
            goto fail;
        }
        if (max_values && ++values > max_values) {
            r = JSONV_TOO_MANY;
            goto fail;
        }
        unsigned char c = sc.s[sc.pos];
        if (c == '[' || c == '{') {
            if (depth == max_depth) {
                r = JSONV_TOO_DEEP;
                goto fail;
            }
            unsigned char bit = (unsigned char)(1u << (depth % 8));
            if (c == '{')
                is_object[depth / 8] |= bit;
            else
                is_object[depth / 8] &= (unsigned char)~bit;
            depth++;
            sc.pos++;
            skip_ws(&sc);
            bool empty = sc.pos < sc.len && sc.s[sc.pos] == (c == '[' ? ']' : '}');
            if (empty) {
                sc.pos++;
                depth--;
            } else {
                if (c == '{' && (r = member_key(&sc)) < 0)
                    goto fail;
                continue; /* to its first value */
            }
        } else if ((r = scalar(&sc)) < 0) {
            goto fail;
        }
        /* After a value: a comma and the next one, the end of the
         * containers it closes, or the end of the text. */
        for (;;) {
            skip_ws(&sc);
            if (depth == 0) {
                if (sc.pos == sc.len)
                    return JSONV_OK;
                r = JSONV_SYNTAX; /* something after the value */
                goto fail;
            }
            if (sc.pos >= sc.len) {
                r = JSONV_SYNTAX;
                goto fail;
            }
            bool object = is_object[(depth - 1) / 8] & (1u << ((depth - 1) % 8));
            c = sc.s[sc.pos];
            if (c == ',') {
                sc.pos++;
                skip_ws(&sc);
                if (object && (r = member_key(&sc)) < 0)
                    goto fail;
                break; /* to the next value */
            }
            if (c != (object ? '}' : ']')) {
                r = JSONV_SYNTAX;
                goto fail;
            }
            sc.pos++;
            depth--;
        }
    }
fail:
    if (ret_offset)
        *ret_offset = sc.pos;
    return r;
}

const char *jsonv_result_name(int r)
{
    switch (r) {
    case JSONV_OK:
        return "valid";
    case JSONV_SYNTAX:
        return "not JSON";
    case JSONV_TOO_DEEP:
        return "nested too deep";
    case JSONV_TOO_MANY:
        return "too many values";
    default:
        return "?";
    }
}
