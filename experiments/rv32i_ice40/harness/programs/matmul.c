/* Search benchmark: 10x10 integer matrix product with a software multiply (RV32I has none). */
#include "rt.h"
#define N 10
static int A[N][N], B[N][N], C[N][N];

int main(void) {
    unsigned s = 12345u;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            s ^= s << 13; s ^= s >> 17; s ^= s << 5;
            A[i][j] = (int)(s & 0xff) - 128;
            B[i][j] = (int)((s >> 8) & 0x7f);
        }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            int acc = 0;
            for (int k = 0; k < N; k++) acc += A[i][k] * B[k][j];
            C[i][j] = acc;
        }
    unsigned h = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) h = ((h << 7) | (h >> 25)) + (unsigned)C[i][j];
    out(h);
    out((unsigned)C[N - 1][N - 1]);
    return 0;
}
