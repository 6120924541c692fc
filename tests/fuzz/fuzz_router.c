/* libFuzzer target for the API's router (src/api/router.c). The first byte
 * picks the method (below 0x80; past that, a raw method string is taken
 * from the input up to the first space) and, in bits 3..5, the size of the
 * Allow buffer (exactly that many bytes on the heap, so that ASan sees any
 * overrun); the rest is the path, copied with a NUL terminator. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/router.h"
#include "common/util.h"
#include "fuzz_check.h"

static const size_t allow_sizes[] = {64, 0, 1, 2, 5, 8, 11, 16};

static const char *const methods[] = {"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"};
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether method is listed in the allow header value ("GET, DELETE"). */
static int allow_has(const char *allow, const char *method)
{
    size_t n = strlen(method);
    if (n == 0)
        return 0;
    for (const char *p = allow; (p = strstr(p, method)); p += n)
        if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char method[16];
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    data++;
    size--;
    if (sel < 0x80) {
        snprintf(method, sizeof(method), "%s", methods[sel % N_METHODS]);
    } else {
        /* A raw method: bytes up to the first space (at most 15). */
        size_t n = 0;
        while (n < size && n < sizeof(method) - 1 && data[n] != ' ')
            n++;
        memcpy(method, data, n);
        method[n] = '\0';
        if (n < size)
            n++;
        data += n;
        size -= n;
    }

    char *path = malloc(size + 1);
    if (!path)
        return 0;
    memcpy(path, data, size);
    path[size] = '\0';

    struct route_match m;
    size_t allowlen = allow_sizes[(sel >> 3) & 7];
    char *allow = malloc(allowlen ? allowlen : 1);
    if (!allow) {
        free(path);
        return 0;
    }
    memset(&m, 0, sizeof(m));
    memset(allow, 0x5a, allowlen ? allowlen : 1);
    int r = router_match(method, path, &m, allow, allowlen);

    CHECK(r == 0 || r == -ENOENT || r == -EPERM);
    if (allowlen)
        CHECK(memchr(allow, '\0', allowlen) != NULL);
    if (r == 0) {
        CHECK((int)m.route >= 0 && m.route < ROUTE__COUNT);
        const struct route *rt = &router_routes[m.route];
        CHECK(rt->id == m.route);
        CHECK(!strcmp(rt->method, method));
        CHECK(memchr(m.id, '\0', sizeof(m.id)) != NULL);
        const char *hole = strstr(rt->pattern, "{id}");
        size_t holelen = 4;
        if (!hole) {
            hole = strstr(rt->pattern, "{file}");
            holelen = 6;
        }
        if (hole) {
            /* The path is the pattern with a valid id (or file name) in the hole. */
            CHECK(holelen == 4 ? util_valid_id(m.id) : router_valid_file(m.id));
            size_t pre = (size_t)(hole - rt->pattern), idlen = strlen(m.id);
            CHECK(strlen(path) == strlen(rt->pattern) - holelen + idlen);
            CHECK(!strncmp(path, rt->pattern, pre));
            CHECK(!strncmp(path + pre, m.id, idlen));
            CHECK(!strcmp(path + pre + idlen, hole + holelen));
        } else {
            CHECK(!strcmp(rt->pattern, path));
        }
    } else if (r == -EPERM) {
        /* Room for at least one method: the list is not empty. */
        if (allowlen >= 4)
            CHECK(allow[0] != '\0');
        if (allowlen == 64)
            CHECK(!allow_has(allow, method));
    } else if (allowlen) {
        CHECK(allow[0] == '\0');
    }
    free(allow);
    free(path);
    return 0;
}
