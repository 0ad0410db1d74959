// The synthesised design (fixed): the core, the RAM and the output register on the LEDs, with a
// power-on reset. Timing is what nextpnr reports for clk. The core's retirement port is left
// unconnected here (simulation only), so it costs nothing.
module top (
    input  wire       clk,
    output reg  [7:0] led
);
    reg [3:0] por = 4'd0;
    wire reset = ~&por;
    always @(posedge clk) if (reset) por <= por + 4'd1;

    wire [31:0] imem_addr, imem_rdata, dmem_addr, dmem_wdata, dmem_rdata;
    wire [3:0]  dmem_wstrb;
    core cpu (
        .clk(clk), .reset(reset),
        .imem_addr(imem_addr), .imem_rdata(imem_rdata),
        .dmem_addr(dmem_addr), .dmem_wstrb(dmem_wstrb), .dmem_wdata(dmem_wdata), .dmem_rdata(dmem_rdata),
        .rvfi_valid(), .rvfi_pc(), .rvfi_insn(), .rvfi_rd(), .rvfi_rd_wdata()
    );
    ram mem (
        .clk(clk), .iaddr(imem_addr), .irdata(imem_rdata),
        .daddr(dmem_addr), .dwe(dmem_addr[31] ? 4'b0000 : dmem_wstrb), .dwdata(dmem_wdata), .drdata(dmem_rdata)
    );
    always @(posedge clk) if (dmem_addr[31] && dmem_wstrb[0]) led <= dmem_wdata[7:0];
endmodule
