/* GET / and GET /ui/{file}: the dashboard's static files (src/api/ui.h). */
#include "ui.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>

#include "../common/util.h"
#include "http.h"
#include "server.h"

/* Everything from this origin, nothing inline, no framing. The page's
 * styles are in style.css and it sets element styles only through the
 * CSSOM, which style-src does not restrict. */
#define UI_CSP                                                                                     \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "                 \
    "frame-ancestors 'none'"

const struct ui_file *ui_find(const char *name)
{
    for (unsigned i = 0; i < ui_nfiles; i++)
        if (!strcmp(ui_files[i].name, name))
            return &ui_files[i];
    return NULL;
}

/* GET / (index.html) and GET /ui/{file}; 404 for a name
 * that is not embedded. */
static void route_ui(void *ctx, struct evhttp_request *req, const struct route_match *m)
{
    (void)ctx;
    const char *name = m->route == ROUTE_UI_INDEX ? "index.html" : m->id;
    const struct ui_file *f = ui_find(name);
    if (!f) {
        http_send_error(req, 404, "no dashboard file '%s'", name);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Security-Policy", UI_CSP);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    /* Revalidated on every load (cheap: 304 by ETag), so a new binary's
     * files are picked up at once. */
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "ETag", f->etag);
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    if (inm && strstr(inm, f->etag)) {
        evhttp_send_reply(req, 304, "Not Modified", NULL);
        return;
    }
    struct evbuffer *buf = evbuffer_new();
    if (!buf) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add_reference(buf, f->data, f->len, NULL, NULL);
    evhttp_add_header(h, "Content-Type", f->type);
    evhttp_send_reply(req, 200, "OK", buf);
    evbuffer_free(buf);
}

void ui_register(struct server *s)
{
    static const struct server_route routes[] = {{ROUTE_UI_INDEX, route_ui},
                                                 {ROUTE_UI_FILE, route_ui}};
    server_add_routes(s, routes, ARRAY_SIZE(routes), NULL);
}
