"""Build rpki/_rtrlib_cffi (cffi API mode) against librtr-dev 0.8; run by scripts/build.d/20-rtrlib.sh.

Why our own cdef: the upstream python binding is not on PyPI in a usable version and its manager
wrapper is broken. The binding is a handful of C helpers over rtr_mgr that
keep every struct on the C side, so the cdef does not depend on rtrlib's struct layouts, and a dump
writes the table in rpki/keys.py's compact form with no per-record Python callback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cffi

CDEF = """
struct savd_rtr;
struct savd_rtr *savd_rtr_start(const char *host, const char *port, unsigned int refresh_s,
                                unsigned int expire_s, unsigned int retry_s);
int savd_rtr_in_sync(struct savd_rtr *s);
unsigned long savd_rtr_updates(struct savd_rtr *s);
size_t savd_rtr_size(struct savd_rtr *s);
size_t savd_rtr_dump(struct savd_rtr *s, unsigned char *buf, size_t cap, size_t *v4_used);
int savd_rtr_validate(struct savd_rtr *s, uint32_t asn, const char *addr, uint8_t len);
void savd_rtr_stop(struct savd_rtr *s);
"""

SOURCE = r"""
#include <rtrlib/rtrlib.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct savd_rtr {
    struct tr_tcp_config tcp;
    struct tr_socket tr;
    struct rtr_socket rtr;
    struct rtr_socket *socks[1];
    struct rtr_mgr_group group;
    struct rtr_mgr_config *conf;
    char host[256];
    char port[16];
};

static atomic_ulong savd_updates;

static void savd_on_update(struct pfx_table *t, const struct pfx_record r, const bool added)
{
    (void)t; (void)r; (void)added;
    atomic_fetch_add(&savd_updates, 1);
}

struct savd_rtr *savd_rtr_start(const char *host, const char *port, unsigned int refresh_s,
                                unsigned int expire_s, unsigned int retry_s)
{
    struct savd_rtr *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    strncpy(s->host, host, sizeof(s->host) - 1);
    strncpy(s->port, port, sizeof(s->port) - 1);
    s->tcp.host = s->host;
    s->tcp.port = s->port;
    if (tr_tcp_init(&s->tcp, &s->tr) != 0) { free(s); return NULL; }
    s->rtr.tr_socket = &s->tr;
    s->socks[0] = &s->rtr;
    s->group.sockets = s->socks;
    s->group.sockets_len = 1;
    s->group.preference = 1;
    if (rtr_mgr_init(&s->conf, &s->group, 1, refresh_s, expire_s, retry_s, savd_on_update, NULL, NULL, NULL)
        != RTR_SUCCESS) { free(s); return NULL; }
    if (rtr_mgr_start(s->conf) != RTR_SUCCESS) { free(s); return NULL; }
    return s;
}

int savd_rtr_in_sync(struct savd_rtr *s) { return rtr_mgr_conf_in_sync(s->conf) ? 1 : 0; }

unsigned long savd_rtr_updates(struct savd_rtr *s) { (void)s; return atomic_load(&savd_updates); }

struct savd_dump { unsigned char *buf; size_t cap; size_t used; size_t count; };

static void savd_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static void savd_dump_record(const struct pfx_record *r, void *data)
{
    struct savd_dump *d = data;
    int v6 = r->prefix.ver == LRTR_IPV6;
    size_t need = v6 ? 23 : 11;
    d->count++;
    if (d->used + need > d->cap) { d->used += need; return; }
    unsigned char *p = d->buf + d->used;
    p[0] = r->min_len; p[1] = r->max_len; p[2] = 0;
    if (v6) {
        for (int i = 0; i < 4; i++) savd_put_u32(p + 3 + 4 * i, r->prefix.u.addr6.addr[i]);
        savd_put_u32(p + 19, r->asn);
    } else {
        savd_put_u32(p + 3, r->prefix.u.addr4.addr);
        savd_put_u32(p + 7, r->asn);
    }
    d->used += need;
}

static void savd_count_record(const struct pfx_record *r, void *data)
{
    size_t *n = data;
    *n += r->prefix.ver == LRTR_IPV6 ? 23 : 11;
}

size_t savd_rtr_size(struct savd_rtr *s)
{
    size_t n = 0;
    rtr_mgr_for_each_ipv4_record(s->conf, savd_count_record, &n);
    rtr_mgr_for_each_ipv6_record(s->conf, savd_count_record, &n);
    return n;
}

/* Writes IPv4 then IPv6 keys; returns the bytes needed (more than cap means truncated). */
size_t savd_rtr_dump(struct savd_rtr *s, unsigned char *buf, size_t cap, size_t *v4_used)
{
    struct savd_dump d = { buf, cap, 0, 0 };
    rtr_mgr_for_each_ipv4_record(s->conf, savd_dump_record, &d);
    *v4_used = d.used;
    rtr_mgr_for_each_ipv6_record(s->conf, savd_dump_record, &d);
    return d.used;
}

int savd_rtr_validate(struct savd_rtr *s, uint32_t asn, const char *addr, uint8_t len)
{
    struct lrtr_ip_addr ip;
    enum pfxv_state state;
    if (lrtr_ip_str_to_addr(addr, &ip) != 0) return -1;
    if (rtr_mgr_validate(s->conf, asn, &ip, len, &state) != PFX_SUCCESS) return -1;
    return (int)state;
}

/* rtr_mgr_stop/free abort in 0.8 (tr_tcp_free assertion); the worker process exits instead. */
void savd_rtr_stop(struct savd_rtr *s) { rtr_mgr_stop(s->conf); }
"""


def build(out_dir: Path) -> Path:
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source("rpki._rtrlib_cffi", SOURCE, libraries=["rtr"], extra_compile_args=["-O2", "-std=gnu11"])
    return Path(ffi.compile(tmpdir=str(out_dir), verbose=False))


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    print(build(root))
