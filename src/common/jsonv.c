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

/* The arrays and objects open at once, and the values seen. Kept apart
 * from the scan, whose address goes to functions that are not inlined
 * (skip_ws, string): in one struct with it, these could not stay in
 * registers across those calls. */
struct nest {
    size_t depth, max_depth;
    size_t values, max_values;
    /* Bit d set: the container open at depth d (0-based) is an object. */
    unsigned char is_object[JSONV_DEPTH_MAX / 8];
};

/* What a step of the walk leaves next: another value, or the end of the
 * text; or, inside a step, the end of a value (a scalar, an empty or a
 * closed container). Errors are jsonv_results; member_key's JSONV_OK is
 * NEXT_VALUE, its value follows. */
enum { NEXT_VALUE = JSONV_OK, VALUE_ENDED = 1, TEXT_ENDED = 2 };

/* Opens the array or object at sc->pos. VALUE_ENDED if it is empty (and
 * closed again); else NEXT_VALUE, at its first value. */
static int open_container(struct scan *sc, struct nest *n)
{
    unsigned char c = sc->s[sc->pos];
    if (n->depth == n->max_depth)
        return JSONV_TOO_DEEP;
    unsigned char bit = (unsigned char)(1u << (n->depth % 8));
    if (c == '{')
        n->is_object[n->depth / 8] |= bit;
    else
        n->is_object[n->depth / 8] &= (unsigned char)~bit;
    n->depth++;
    sc->pos++;
    skip_ws(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == (c == '[' ? ']' : '}')) {
        sc->pos++;
        n->depth--;
        return VALUE_ENDED;
    }
    return c == '{' ? member_key(sc) : NEXT_VALUE;
}

/* After a value: a comma and the next value (NEXT_VALUE), the ends of the
 * containers it closes, or the end of the text (TEXT_ENDED). */
static int after_value(struct scan *sc, struct nest *n)
{
    for (;;) {
        skip_ws(sc);
        if (n->depth == 0)
            return sc->pos == sc->len ? TEXT_ENDED : JSONV_SYNTAX;
        if (sc->pos >= sc->len)
            return JSONV_SYNTAX;
        size_t d = n->depth - 1;
        bool object = n->is_object[d / 8] & (1u << (d % 8));
        unsigned char c = sc->s[sc->pos];
        if (c == ',') {
            sc->pos++;
            skip_ws(sc);
            return object ? member_key(sc) : NEXT_VALUE;
        }
        if (c != (object ? '}' : ']'))
            return JSONV_SYNTAX;
        sc->pos++;
        n->depth--;
    }
}

/* One step of the walk: the value at sc->pos (whitespace before it
 * skipped), a scalar whole or the opening of an array or object, and when
 * that ends the value, what follows it. Taking what follows here, not in
 * jsonv_check's loop, leaves that loop one test a step: the walk runs no
 * more instructions than the single function it was (callgrind, on
 * bench/json_cost.c's text). */
static int step(struct scan *sc, struct nest *n)
{
    if (sc->pos >= sc->len)
        return JSONV_SYNTAX;
    if (n->max_values && ++n->values > n->max_values)
        return JSONV_TOO_MANY;
    unsigned char c = sc->s[sc->pos];
    int r;
    if (c == '[' || c == '{') {
        if ((r = open_container(sc, n)) != VALUE_ENDED)
            return r;
    } else if ((r = scalar(sc)) < 0) {
        return r;
    }
    return after_value(sc, n);
}

int jsonv_check(const char *buf, size_t len, const struct jsonv_limits *lim, size_t *ret_offset)
{
    struct scan sc = {(const unsigned char *)buf, len, 0};
    /* Not zeroed as a whole: is_object's bits are written before they are
     * read. */
    struct nest n;
    n.depth = 0;
    n.max_depth = lim && lim->max_depth && lim->max_depth < JSONV_DEPTH_MAX ? lim->max_depth
                                                                            : JSONV_DEPTH_MAX;
    n.values = 0;
    n.max_values = lim ? lim->max_values : 0;
    int r;

    skip_ws(&sc);
    do
        r = step(&sc, &n);
    while (r == NEXT_VALUE);
    if (r < 0 && ret_offset)
        *ret_offset = sc.pos;
    return r < 0 ? r : JSONV_OK;
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
