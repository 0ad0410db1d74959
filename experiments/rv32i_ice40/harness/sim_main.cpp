// Verilator driver for tb.v: toggles the clock until the test bench finishes.
#include "Vtb.h"
#include "verilated.h"

int main(int argc, char **argv) {
    VerilatedContext *ctx = new VerilatedContext;
    ctx->commandArgs(argc, argv);
    Vtb *top = new Vtb{ctx};
    top->clk = 0;
    top->eval();
    while (!ctx->gotFinish()) {
        top->clk = !top->clk;
        top->eval();
    }
    top->final();
    delete top;
    delete ctx;
    return 0;
}
