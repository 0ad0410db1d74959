// The machine's RAM (fixed): 4 KB, one instruction read port and one data read/write port.
// Both reads are synchronous: the word at the address presented in cycle t is on the read data
// output in cycle t+1 (iCE40 block RAM). A write (byte strobes) happens at the clock edge that ends
// the cycle it is presented in; a read of the same word in that cycle returns the old word.
// Address bits [11:2] select the word; the caller decodes everything else.
module ram (
    input  wire        clk,
    input  wire [31:0] iaddr,
    output reg  [31:0] irdata,
    input  wire [31:0] daddr,
    input  wire [3:0]  dwe,
    input  wire [31:0] dwdata,
    output reg  [31:0] drdata
);
    reg [31:0] mem [0:1023];
    always @(posedge clk) begin
        if (dwe[0]) mem[daddr[11:2]][7:0]   <= dwdata[7:0];
        if (dwe[1]) mem[daddr[11:2]][15:8]  <= dwdata[15:8];
        if (dwe[2]) mem[daddr[11:2]][23:16] <= dwdata[23:16];
        if (dwe[3]) mem[daddr[11:2]][31:24] <= dwdata[31:24];
        irdata <= mem[iaddr[11:2]];
        drdata <= mem[daddr[11:2]];
    end
endmodule
