/* Holdout benchmark: sieve of Eratosthenes over bytes below 2400; count and sum of the primes. */
#include "rt.h"
#define N 2400
static unsigned char composite[N];

int main(void) {
    unsigned count = 0, sum = 0;
    for (unsigned i = 2; i < N; i++) {
        if (composite[i]) continue;
        count++;
        sum += i;
        for (unsigned j = i + i; j < N; j += i) composite[j] = 1;
    }
    out(count);
    out(sum);
    return 0;
}
