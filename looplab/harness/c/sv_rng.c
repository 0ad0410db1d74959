/* sv_rng.c — the supervisor's randomness: ChaCha20 (Bernstein's original: 64-bit counter, 64-bit
 * nonce) keyed from getrandom(). A keyed stream cipher, not a counter hash: seeing any number of
 * inputs tells nothing about the key, the next inputs or the canaries.
 */
#include <sys/random.h>

#include "sv_internal.h"

#define LANES 8  /* blocks computed at once: GCC's vector extension, AVX2 with -march=native */
typedef uint32_t lanes __attribute__((vector_size(4 * LANES)));

#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define QR(a, b, c, d) \
    (a += b, d ^= a, d = ROTL(d, 16), c += d, b ^= c, b = ROTL(b, 12), \
     a += b, d ^= a, d = ROTL(d, 8), c += d, b ^= c, b = ROTL(b, 7))

/* LANES consecutive ChaCha20 blocks; the words are handed out word-major (word 0 of every block, then
 * word 1, ...): the same keystream words, in an order that needs no transpose. */
static void chacha_blocks(ll_chacha* r) {
    static const uint32_t sigma[4] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};  /* "expand 32-byte k" */
    lanes in[16], x[16];
    for (int i = 0; i < 4; i++) in[i] = (lanes){0} + sigma[i];
    for (int i = 0; i < 8; i++) in[4 + i] = (lanes){0} + r->key[i];
    for (int l = 0; l < LANES; l++) {
        uint64_t ctr = r->ctr + (uint64_t)l;
        in[12][l] = (uint32_t)ctr;
        in[13][l] = (uint32_t)(ctr >> 32);
    }
    in[14] = (lanes){0} + (uint32_t)r->nonce;
    in[15] = (lanes){0} + (uint32_t)(r->nonce >> 32);
    memcpy(x, in, sizeof x);
    for (int i = 0; i < 10; i++) {  /* 20 rounds: a column round and a diagonal round, ten times */
        QR(x[0], x[4], x[8], x[12]); QR(x[1], x[5], x[9], x[13]);
        QR(x[2], x[6], x[10], x[14]); QR(x[3], x[7], x[11], x[15]);
        QR(x[0], x[5], x[10], x[15]); QR(x[1], x[6], x[11], x[12]);
        QR(x[2], x[7], x[8], x[13]); QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; i++) {
        lanes w = x[i] + in[i];
        memcpy(r->block + i * LANES, &w, sizeof w);
    }
    r->ctr += LANES;
    r->used = 0;
}

void ll_chacha_init(ll_chacha* r, const uint8_t key[32], uint64_t nonce) {
    memcpy(r->key, key, 32);
    r->nonce = nonce;
    r->ctr = 0;
    r->used = 16 * LANES;
}

uint32_t ll_chacha_u32(ll_chacha* r) {
    if (r->used == 16 * LANES) chacha_blocks(r);
    return r->block[r->used++];
}

/* OS randomness or nothing: a harness that cannot get it must not fall back to a guessable seed. */
void ll_os_random(void* buf, size_t n) {
    unsigned char* p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            perror("looplab supervisor: getrandom");
            exit(3);
        }
        p += got;
        n -= (size_t)got;
    }
}

/* --seed X (a debugging aid): 64 hex digits are the key itself (an inputs_seed printed earlier);
 * anything else is stretched into a key, so `--seed 1` gives the same inputs every time. */
void ll_key_from_seed(const char* seed, uint8_t key[32]) {
    size_t n = strlen(seed);
    int hex = n == 64;
    for (size_t i = 0; hex && i < n; i++) hex = strchr("0123456789abcdefABCDEF", seed[i]) != NULL;
    if (hex) {
        for (int i = 0; i < 32; i++) {
            unsigned v;
            sscanf(seed + 2 * i, "%2x", &v);
            key[i] = (uint8_t)v;
        }
        return;
    }
    uint8_t raw[32] = {0};
    for (size_t i = 0; i < n; i++) raw[i % 32] = (uint8_t)(raw[i % 32] * 31 + (uint8_t)seed[i]);
    ll_chacha r;
    ll_chacha_init(&r, raw, n);
    for (int i = 0; i < 8; i++) {
        uint32_t w = ll_chacha_u32(&r);
        memcpy(key + 4 * i, &w, 4);
    }
}

void ll_hex(const uint8_t* p, size_t n, char* out) {
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

/* ---------- the experiment's view ---------- */

uint64_t ll_rand(ll_case* c) {
    uint64_t lo = ll_chacha_u32(&c->in_rng);
    return lo | (uint64_t)ll_chacha_u32(&c->in_rng) << 32;
}

float ll_uniform(ll_case* c, float lo, float hi) {
    return lo + (hi - lo) * (float)((ll_chacha_u32(&c->in_rng) >> 8) * (1.0 / 16777216.0));
}

void ll_fill(ll_case* c, float* p, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) p[i] = ll_uniform(c, lo, hi);
}

void ll_fill_f64(ll_case* c, double* p, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * ((ll_rand(c) >> 11) * (1.0 / 9007199254740992.0));
}

long ll_pick(ll_case* c, long n) {
    if (n <= 1) return 0;
    uint64_t x = ll_chacha_u32(&c->pick_rng);
    x = x << 32 | ll_chacha_u32(&c->pick_rng);
    return (long)(x % (uint64_t)n);
}
