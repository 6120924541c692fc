/* The web dashboard: the files of web/, embedded at build time by
 * tools/embed_web.sh into build/gen/web.c, served at / and /ui/{file}
 * without auth (they hold no data; the page asks for a token and sends it
 * on its /v1 calls). */
#ifndef STRATQ_API_UI_H
#define STRATQ_API_UI_H

#include <stddef.h>

struct ui_file {
    const char *name; /* "app.js" */
    const unsigned char *data;
    size_t len;
    const char *type; /* Content-Type */
    const char *etag; /* "\"<cksum>-<len>\"" */
};

/* ui_nfiles entries, then a NULL-named sentinel. */
extern const struct ui_file ui_files[];
extern const unsigned ui_nfiles;

/* The file named name, or NULL. */
const struct ui_file *ui_find(const char *name);

struct server;
/* Serves GET / (index.html) and GET /ui/{file}. */
void ui_register(struct server *s);

#endif
