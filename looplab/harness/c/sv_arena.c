/* sv_arena.c — the memory the supervisor shares with the worker, and everything checked in it.
 *
 * Layout: a header page, then `batch` input sets, each holding every declared buffer; every byte
 * between two buffers (at least LL_CANARY of them) is a random canary, kept privately for the check.
 * The supervisor never trusts what it reads back: inputs are compared with its own copies (not a
 * hash a candidate could collide), outputs are copied out once the worker is stopped and checked
 * from the copy, and the arena must still match both after the checks.
 */
#include <sys/mman.h>

#include "sv_internal.h"

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static void poison(ll_bufspec* b, unsigned char* p) {
    /* a value no correct target leaves behind, so unwritten outputs fail the check */
    if (b->type == LL_F32) { float v = -7.77e33f; for (size_t i = 0; i < b->count; i++) memcpy(p + 4 * i, &v, 4); }
    else if (b->type == LL_F64) { double v = -7.77e300; for (size_t i = 0; i < b->count; i++) memcpy(p + 8 * i, &v, 8); }
    else memset(p, 0xa5, b->bytes);
}

static unsigned char* data(ll_case* c, int set, int slot) { return c->base + c->buf[slot].off + (size_t)set * c->stride; }

/* Offsets of every buffer and gap; then the memfd (sealed against resizing), mapped, canaries written. */
int ll_arena_create(ll_case* c) {
    size_t cursor = 0;
    for (int b = 0; b < c->nbuf; b++) {
        ll_bufspec* s = &c->buf[b];
        if (s->absent) continue;
        s->off = LL_HEADER_BYTES + align_up(cursor + LL_CANARY, 64) + (s->misalign ? s->esize : 0);
        cursor = s->off - LL_HEADER_BYTES + s->bytes;
    }
    c->stride = align_up(cursor, 64);
    c->size = align_up(LL_HEADER_BYTES + (size_t)c->batch * c->stride + LL_CANARY, 4096);
    c->gaps = calloc((size_t)c->batch * LL_MAX_BUFS + 1, sizeof(ll_gap));
    size_t prev = LL_HEADER_BYTES, total = 0;
    int pb = -1, ps = -1;
    for (int s = 0; s <= c->batch; s++)
        for (int b = 0; b < c->nbuf; b++) {
            if (s < c->batch && c->buf[b].absent) continue;
            size_t start = s < c->batch ? (size_t)(data(c, s, b) - c->base) : c->size;
            c->gaps[c->ngaps++] = (ll_gap){prev, start - prev, pb, s < c->batch ? b : -1, ps, s};
            total += start - prev;
            if (s == c->batch) goto laid_out;
            prev = start + c->buf[b].bytes, pb = b, ps = s;
        }
laid_out:
    c->fd = memfd_create("looplab-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (c->fd < 0 || ftruncate(c->fd, (off_t)c->size) != 0 ||
        fcntl(c->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        return ll_fail_as(c, "crash", "looplab supervisor: cannot create the arena (%s)", strerror(errno));
    c->base = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
    if (c->base == MAP_FAILED) {
        c->base = NULL;
        return ll_fail_as(c, "crash", "looplab supervisor: cannot map the arena (%s)", strerror(errno));
    }
    c->canary = malloc(total ? total : 1);
    ll_os_random(c->canary, total);  /* unpredictable: a stray write cannot match them by luck */
    for (int g = 0, pos = 0; g < c->ngaps; pos += (int)c->gaps[g].len, g++)
        memcpy(c->base + c->gaps[g].off, c->canary + pos, c->gaps[g].len);
    ((ll_header*)c->base)->magic = LL_MAGIC;
    for (int b = 0; b < c->nbuf; b++) {
        ll_bufspec* s = &c->buf[b];
        if (s->absent) continue;
        if (s->role & LL_IN) s->priv = calloc((size_t)c->batch, s->bytes ? s->bytes : 1);
        if (s->role & LL_OUT) s->snap = calloc((size_t)c->batch, s->bytes ? s->bytes : 1);
        if ((s->role & LL_IN && !s->priv) || (s->role & LL_OUT && !s->snap))
            return ll_fail_as(c, "crash", "looplab supervisor: out of memory for %s", s->name);
    }
    return 1;
}

/* Before a batch (worker stopped): the inputs from the supervisor's copies, outputs poisoned. */
void ll_arena_prepare(ll_case* c, int nsets) {
    for (int s = 0; s < nsets; s++)
        for (int b = 0; b < c->nbuf; b++) {
            ll_bufspec* sp = &c->buf[b];
            if (sp->absent) continue;
            if (sp->role & LL_IN) memcpy(data(c, s, b), sp->priv + (size_t)s * sp->bytes, sp->bytes);
            else poison(sp, data(c, s, b));
        }
}

static long first_nonfinite(const ll_bufspec* b, const unsigned char* p) {
    for (size_t i = 0; i < b->count; i++) {
        double v;
        if (b->type == LL_F32) { float f; memcpy(&f, p + 4 * i, 4); v = f; }
        else { memcpy(&v, p + 8 * i, 8); }
        if (!isfinite(v)) return (long)i;
    }
    return -1;
}

static int check_canaries(ll_case* c) {
    size_t pos = 0;
    for (int g = 0; g < c->ngaps; pos += c->gaps[g].len, g++) {
        const ll_gap* gp = &c->gaps[g];
        const unsigned char* got = c->base + gp->off;
        if (memcmp(got, c->canary + pos, gp->len) == 0) continue;
        size_t i = 0;
        while (got[i] == c->canary[pos + i]) i++;
        /* nearer the end of the buffer before the gap: an overrun; else an underrun of the next */
        if (gp->before >= 0 && (i < gp->len / 2 || gp->after < 0))
            return ll_fail(c, "wrote past the end of %s on call %d", c->buf[gp->before].name, c->call_base + gp->set_before);
        if (gp->after >= 0)
            return ll_fail(c, "wrote before %s on call %d", c->buf[gp->after].name, c->call_base + gp->set_after);
        return ll_fail(c, "wrote outside its buffers on call %d", c->call_base);
    }
    return 1;
}

/* After a batch (worker stopped): snapshot outputs, then canaries, inputs, NaN/Inf. 0 = c failed. */
int ll_arena_verify(ll_case* c, int nsets) {
    for (int s = 0; s < nsets; s++)
        for (int b = 0; b < c->nbuf; b++)
            if (!c->buf[b].absent && c->buf[b].role & LL_OUT)
                memcpy(c->buf[b].snap + (size_t)s * c->buf[b].bytes, data(c, s, b), c->buf[b].bytes);
    if (!check_canaries(c)) return 0;
    for (int s = 0; s < nsets; s++)
        for (int b = 0; b < c->nbuf; b++) {
            ll_bufspec* sp = &c->buf[b];
            if (sp->absent) continue;
            if (sp->role == LL_IN && memcmp(data(c, s, b), sp->priv + (size_t)s * sp->bytes, sp->bytes) != 0)
                return ll_fail(c, "modified %s (it is const) on call %d", sp->name, c->call_base + s);
            if (!(sp->role & LL_OUT) || (sp->type != LL_F32 && sp->type != LL_F64)) continue;
            long bad = first_nonfinite(sp, sp->snap + (size_t)s * sp->bytes);
            if (bad >= 0) {
                double v = sp->type == LL_F32 ? ((float*)(void*)(sp->snap + (size_t)s * sp->bytes))[bad]
                                              : ((double*)(void*)(sp->snap + (size_t)s * sp->bytes))[bad];
                return ll_fail(c, "%s[%ld] is %g on call %d", sp->name, bad, v, c->call_base + s);
            }
        }
    return 1;
}

/* After the checks: nothing may have touched the arena while the worker was stopped. */
int ll_arena_unchanged(ll_case* c, int nsets) {
    for (int s = 0; s < nsets; s++)
        for (int b = 0; b < c->nbuf; b++) {
            ll_bufspec* sp = &c->buf[b];
            if (sp->absent) continue;
            const unsigned char* want = sp->role & LL_OUT ? sp->snap : sp->priv;
            if (memcmp(data(c, s, b), want + (size_t)s * sp->bytes, sp->bytes) != 0)
                return ll_fail(c, "%s changed while the target was stopped after call %d: another thread or "
                               "process is writing to it (single thread only)", sp->name, c->call_base + s);
        }
    return check_canaries(c);
}

void ll_arena_free(ll_case* c) {
    if (c->base) munmap(c->base, c->size);
    if (c->fd >= 0) close(c->fd);
    for (int b = 0; b < c->nbuf; b++) { free(c->buf[b].priv); free(c->buf[b].snap); }
    free(c->gaps);
    free(c->canary);
}
