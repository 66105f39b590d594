/* aside.h - private to lib/core/: the hidden names beside an output, shared by lock.c (the lock, the
 * directories built aside, the stale ones) and atomic.c (the temporaries of lx_write_atomic). */
#ifndef CORE_ASIDE_H
#define CORE_ASIDE_H

#include "lx_core.h"

/* Puts "<dir>/.<base>.<what>" in buf (n bytes), dir and base being path's directory and last name
 * (trailing slashes ignored; no "<dir>/" when path has no slash). LX_EUSAGE if path has no last name
 * (empty, "/", ".", "..") or the name does not fit. */
lx_status lx_aside_name(const char *path, const char *what, char *buf, size_t n, lx_err *e);

#endif
