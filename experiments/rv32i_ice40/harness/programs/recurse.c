/* Holdout benchmark: deep and wide recursion (Fibonacci, Towers of Hanoi, Ackermann). */
#include "rt.h"

__attribute__((noinline)) static unsigned fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static unsigned moves;
__attribute__((noinline)) static void hanoi(int n, int from, int to, int via) {
    if (n == 0) return;
    hanoi(n - 1, from, via, to);
    moves += (unsigned)(from * 3 + to);
    hanoi(n - 1, via, to, from);
}

__attribute__((noinline)) static unsigned ack(unsigned m, unsigned n) {
    if (m == 0) return n + 1;
    if (n == 0) return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}

int main(void) {
    out(fib(14));
    hanoi(9, 0, 2, 1);
    out(moves);
    out(ack(2, 5));
    return 0;
}
