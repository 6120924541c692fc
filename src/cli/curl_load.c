/* libcurl, loaded the first time the CLI calls it (dlopen), not linked.
 *
 * Only the CLI commands and `stratq up` speak HTTP as a client. Linked,
 * libcurl brought some 25 libraries (GnuTLS, Kerberos, LDAP, SSH, ...)
 * into every `stratq api` and `stratq worker` too, which never call it:
 * 3.7 MiB of a worker supervisor's 6.4 MiB PSS, each process its own copy
 * of their relocated data (docs/architecture.md, "The cost of a fork").
 * These are libcurl's own entry points, with curl/curl.h's declarations
 * (the compiler checks that they match), each forwarding to the function
 * of the same name in libcurl.so.4. */
#define _GNU_SOURCE
#define CURL_DISABLE_TYPECHECK /* curl_easy_setopt is defined here, not a macro */
#include <curl/curl.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define LIBCURL "libcurl.so.4"

/* libcurl's function name, or exits with what to install. */
static void *sym(const char *name)
{
    static void *lib;
    if (!lib && !(lib = dlopen(LIBCURL, RTLD_NOW | RTLD_LOCAL))) {
        fprintf(stderr,
                "stratq: cannot load %s (%s): install libcurl (Debian: apt-get install "
                "libcurl4)\n",
                LIBCURL, dlerror());
        exit(1);
    }
    void *f = dlsym(lib, name);
    if (!f) {
        fprintf(stderr, "stratq: %s has no %s: install libcurl 7.68 or later\n", LIBCURL, name);
        exit(1);
    }
    return f;
}

/* The function pointer FN, of libcurl's function NAME, looked up once. */
#define LOAD(fn, name)                                                                             \
    do {                                                                                           \
        if (!(fn))                                                                                 \
            *(void **)(&(fn)) = sym(name);                                                         \
    } while (0)

/* A function of libcurl, RET NAME PARAMS, called with ARGS. */
#define FORWARD(ret, name, params, args)                                                           \
    ret name params                                                                                \
    {                                                                                              \
        static ret(*f) params;                                                                     \
        LOAD(f, #name);                                                                            \
        return f args;                                                                             \
    }
#define FORWARD_VOID(name, params, args)                                                           \
    void name params                                                                               \
    {                                                                                              \
        static void(*f) params;                                                                    \
        LOAD(f, #name);                                                                            \
        f args;                                                                                    \
    }

FORWARD(CURLcode, curl_global_init, (long flags), (flags))
FORWARD_VOID(curl_global_cleanup, (void), ())
FORWARD(CURL *, curl_easy_init, (void), ())
FORWARD(CURLcode, curl_easy_perform, (CURL * curl), (curl))
FORWARD_VOID(curl_easy_cleanup, (CURL * curl), (curl))
FORWARD(const char *, curl_easy_strerror, (CURLcode code), (code))
FORWARD(char *, curl_easy_escape, (CURL * curl, const char *string, int length),
        (curl, string, length))
FORWARD_VOID(curl_free, (void *p), (p))
FORWARD(struct curl_slist *, curl_slist_append, (struct curl_slist * list, const char *string),
        (list, string))
FORWARD_VOID(curl_slist_free_all, (struct curl_slist * list), (list))
FORWARD(CURLM *, curl_multi_init, (void), ())
FORWARD(CURLMcode, curl_multi_add_handle, (CURLM * multi, CURL *curl), (multi, curl))
FORWARD(CURLMcode, curl_multi_remove_handle, (CURLM * multi, CURL *curl), (multi, curl))
FORWARD(CURLMcode, curl_multi_cleanup, (CURLM * multi), (multi))
FORWARD(CURLMsg *, curl_multi_info_read, (CURLM * multi, int *msgs_in_queue),
        (multi, msgs_in_queue))
FORWARD(CURLMcode, curl_multi_perform, (CURLM * multi, int *running_handles),
        (multi, running_handles))
FORWARD(CURLMcode, curl_multi_poll,
        (CURLM * multi, struct curl_waitfd extra_fds[], unsigned int extra_nfds, int timeout_ms,
         int *ret),
        (multi, extra_fds, extra_nfds, timeout_ms, ret))

/* The one argument after the option, of the type its number says
 * (curl.h: CURLOPTTYPE_*). */
CURLcode curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
    static CURLcode (*f)(CURL *, CURLoption, ...);
    LOAD(f, "curl_easy_setopt");
    va_list ap;
    CURLcode r;
    va_start(ap, option);
    if (option < CURLOPTTYPE_OBJECTPOINT)
        r = f(curl, option, va_arg(ap, long));
    else if (option < CURLOPTTYPE_FUNCTIONPOINT)
        r = f(curl, option, va_arg(ap, void *));
    else if (option < CURLOPTTYPE_OFF_T)
        r = f(curl, option, va_arg(ap, void (*)(void)));
    else if (option < CURLOPTTYPE_BLOB)
        r = f(curl, option, va_arg(ap, curl_off_t));
    else
        r = f(curl, option, va_arg(ap, void *));
    va_end(ap);
    return r;
}

/* Every CURLINFO takes one pointer. */
CURLcode curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
{
    static CURLcode (*f)(CURL *, CURLINFO, ...);
    LOAD(f, "curl_easy_getinfo");
    va_list ap;
    va_start(ap, info);
    CURLcode r = f(curl, info, va_arg(ap, void *));
    va_end(ap);
    return r;
}
