// The simulation test bench (fixed): the core and the RAM as in top.v, the program image loaded
// into the RAM, reset held for the first 5 cycles, and a monitor that writes the retirement trace
// and every store to files. Driven by sim_main.cpp (Verilator), which toggles clk.
//   +image=FILE    $readmemh image (one 32-bit word per line)
//   +trace=FILE    one line per retired instruction: pc insn rd value  (value 0 when rd is 0)
//   +stores=FILE   one line per store: word_address strobes data (bytes not written print as 00)
//   +result=FILE   "halt CYCLES" when the halt register is written, "hang CYCLES" at the cap
//   +max_cycles=N  the cap
module tb (
    input wire clk
);
    wire [31:0] imem_addr, imem_rdata, dmem_addr, dmem_wdata, dmem_rdata;
    wire [3:0]  dmem_wstrb;
    wire        rvfi_valid;
    wire [31:0] rvfi_pc, rvfi_insn, rvfi_rd_wdata;
    wire [4:0]  rvfi_rd;
    reg  [2:0]  reset_cycles;
    wire        reset = reset_cycles != 3'd5;
    core dut (
        .clk(clk), .reset(reset),
        .imem_addr(imem_addr), .imem_rdata(imem_rdata),
        .dmem_addr(dmem_addr), .dmem_wstrb(dmem_wstrb), .dmem_wdata(dmem_wdata), .dmem_rdata(dmem_rdata),
        .rvfi_valid(rvfi_valid), .rvfi_pc(rvfi_pc), .rvfi_insn(rvfi_insn), .rvfi_rd(rvfi_rd),
        .rvfi_rd_wdata(rvfi_rd_wdata)
    );
    ram mem (
        .clk(clk), .iaddr(imem_addr), .irdata(imem_rdata),
        .daddr(dmem_addr), .dwe(dmem_addr[31] ? 4'b0000 : dmem_wstrb), .dwdata(dmem_wdata), .drdata(dmem_rdata)
    );

    reg [1023:0] image, trace_file, stores_file, result_file;
    integer trace_fd, stores_fd, result_fd, max_cycles, cycles, drain, i;
    reg halted;
    reg [31:0] mask;
    initial begin
        if (!$value$plusargs("image=%s", image) || !$value$plusargs("trace=%s", trace_file)
            || !$value$plusargs("stores=%s", stores_file) || !$value$plusargs("result=%s", result_file)
            || !$value$plusargs("max_cycles=%d", max_cycles)) begin
            $display("usage: +image= +trace= +stores= +result= +max_cycles=");
            $finish;
        end
        for (i = 0; i < 1024; i = i + 1) mem.mem[i] = 32'd0;
        $readmemh(image, mem.mem);
        trace_fd = $fopen(trace_file, "w");
        stores_fd = $fopen(stores_file, "w");
        result_fd = $fopen(result_file, "w");
        cycles = 0;
        drain = 0;
        halted = 1'b0;
        reset_cycles = 3'd0;
    end

    always @(posedge clk) begin
        if (reset) begin
            reset_cycles <= reset_cycles + 3'd1;
        end else begin
            cycles = cycles + 1;
            if (rvfi_valid)
                $fdisplay(trace_fd, "%08x %08x %02x %08x", rvfi_pc, rvfi_insn, rvfi_rd, rvfi_rd == 5'd0 ? 32'd0 : rvfi_rd_wdata);
            if (dmem_wstrb != 4'b0000) begin
                mask = {{8{dmem_wstrb[3]}}, {8{dmem_wstrb[2]}}, {8{dmem_wstrb[1]}}, {8{dmem_wstrb[0]}}};
                $fdisplay(stores_fd, "%08x %x %08x", {dmem_addr[31:2], 2'b00}, dmem_wstrb, dmem_wdata & mask);
                if (!halted && dmem_addr == 32'h80000004) begin
                    halted = 1'b1;
                    $fdisplay(result_fd, "halt %0d", cycles);
                end
            end
            if (halted) begin
                drain = drain + 1;
                if (drain > 32) begin
                    $fclose(trace_fd); $fclose(stores_fd); $fclose(result_fd);
                    $finish;
                end
            end else if (cycles >= max_cycles) begin
                $fdisplay(result_fd, "hang %0d", cycles);
                $fclose(trace_fd); $fclose(stores_fd); $fclose(result_fd);
                $finish;
            end
        end
    end
endmodule
