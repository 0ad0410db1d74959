// An RV32I core for the iCE40-HX8K (see EXPERIMENT.md for the machine and the rules).
// The port list is fixed; the module body between the markers is yours to rewrite.
module core (
    input  wire        clk,
    input  wire        reset,          // synchronous, active high, held for the first cycles
    // instruction port: synchronous read; imem_rdata in cycle t+1 is the word at imem_addr of cycle t
    output wire [31:0] imem_addr,
    input  wire [31:0] imem_rdata,
    // data port: synchronous read (as above); a store writes the bytes enabled by dmem_wstrb at the
    // clock edge that ends the cycle; 0x80000000: output register, 0x80000004: halt register
    output wire [31:0] dmem_addr,
    output wire [3:0]  dmem_wstrb,
    output wire [31:0] dmem_wdata,
    input  wire [31:0] dmem_rdata,
    // retirement port (simulation only): one pulse per instruction, in program order
    output wire        rvfi_valid,
    output wire [31:0] rvfi_pc,
    output wire [31:0] rvfi_insn,
    output wire [4:0]  rvfi_rd,        // 0 when the instruction writes no register
    output wire [31:0] rvfi_rd_wdata
);
// EVOLVE-BLOCK-START
    // Baseline: multi-cycle, one instruction at a time, no overlap:
    //   FETCH (pc on imem_addr) -> DECODE (latch the instruction, read rs1/rs2 from the block-RAM
    //   register file) -> EXEC (ALU, branch, address) -> [MEM (load/store on the data port)] ->
    //   WB (write rd, retire, next pc).  4 cycles per instruction, 5 for loads and stores.
    localparam FETCH = 3'd0, DECODE = 3'd1, EXEC = 3'd2, MEM = 3'd3, WB = 3'd4;

    reg [2:0]  state;
    reg [31:0] pc, ir, next_pc, result, maddr;
    reg [31:0] rs1v, rs2v;
    reg [31:0] regs [0:31];
    integer k;
    initial for (k = 0; k < 32; k = k + 1) regs[k] = 32'd0;

    wire [6:0] opcode = ir[6:0];
    wire [4:0] rd = ir[11:7];
    wire [2:0] funct3 = ir[14:12];
    wire is_lui = opcode == 7'b0110111, is_auipc = opcode == 7'b0010111;
    wire is_jal = opcode == 7'b1101111, is_jalr = opcode == 7'b1100111;
    wire is_branch = opcode == 7'b1100011, is_load = opcode == 7'b0000011;
    wire is_store = opcode == 7'b0100011, is_opimm = opcode == 7'b0010011;
    wire is_op = opcode == 7'b0110011;
    wire writes_rd = is_lui | is_auipc | is_jal | is_jalr | is_load | is_opimm | is_op;

    wire [31:0] imm_i = {{20{ir[31]}}, ir[31:20]};
    wire [31:0] imm_s = {{20{ir[31]}}, ir[31:25], ir[11:7]};
    wire [31:0] imm_b = {{19{ir[31]}}, ir[31], ir[7], ir[30:25], ir[11:8], 1'b0};
    wire [31:0] imm_u = {ir[31:12], 12'd0};
    wire [31:0] imm_j = {{11{ir[31]}}, ir[31], ir[19:12], ir[20], ir[30:21], 1'b0};

    // ALU
    wire [31:0] b = is_op ? rs2v : imm_i;
    wire [4:0]  shamt = b[4:0];
    wire        sub = is_op & ir[30];
    wire [31:0] sum = sub ? rs1v - b : rs1v + b;
    wire [31:0] sra = $signed(rs1v) >>> shamt;  // alone: inside ?: it would be unsigned
    wire        lt = $signed(rs1v) < $signed(b);
    wire        ltu = rs1v < b;
    reg  [31:0] alu;
    always @(*) begin
        case (funct3)
            3'd0: alu = sum;
            3'd1: alu = rs1v << shamt;
            3'd2: alu = {31'd0, lt};
            3'd3: alu = {31'd0, ltu};
            3'd4: alu = rs1v ^ b;
            3'd5: alu = ir[30] ? sra : rs1v >> shamt;
            3'd6: alu = rs1v | b;
            default: alu = rs1v & b;
        endcase
    end

    // branches
    reg taken;
    always @(*) begin
        case (funct3)
            3'd0: taken = rs1v == rs2v;
            3'd1: taken = rs1v != rs2v;
            3'd4: taken = $signed(rs1v) < $signed(rs2v);
            3'd5: taken = $signed(rs1v) >= $signed(rs2v);
            3'd6: taken = rs1v < rs2v;
            default: taken = rs1v >= rs2v;
        endcase
    end

    // loads: pick and extend the addressed bytes of the word read in MEM
    wire [31:0] lword = dmem_rdata >> {maddr[1:0], 3'b000};
    reg  [31:0] load_value;
    always @(*) begin
        case (funct3)
            3'd0: load_value = {{24{lword[7]}}, lword[7:0]};
            3'd1: load_value = {{16{lword[15]}}, lword[15:0]};
            3'd4: load_value = {24'd0, lword[7:0]};
            3'd5: load_value = {16'd0, lword[15:0]};
            default: load_value = lword;
        endcase
    end
    wire [31:0] wb_value = is_load ? load_value : result;

    // stores: the data moved to the addressed byte lanes, with their strobes
    wire [3:0] store_mask = funct3 == 3'd0 ? 4'b0001 : funct3 == 3'd1 ? 4'b0011 : 4'b1111;
    assign dmem_addr = maddr;
    assign dmem_wdata = rs2v << {maddr[1:0], 3'b000};
    assign dmem_wstrb = (state == MEM && is_store) ? store_mask << maddr[1:0] : 4'b0000;
    assign imem_addr = pc;

    always @(posedge clk) begin
        if (state == DECODE) begin
            rs1v <= regs[imem_rdata[19:15]];
            rs2v <= regs[imem_rdata[24:20]];
        end
        if (state == WB && writes_rd && rd != 5'd0) regs[rd] <= wb_value;
    end

    always @(posedge clk) begin
        if (reset) begin
            state <= FETCH;
            pc <= 32'd0;
        end else begin
            case (state)
                FETCH: state <= DECODE;
                DECODE: begin
                    ir <= imem_rdata;
                    state <= EXEC;
                end
                EXEC: begin
                    result <= is_lui ? imm_u : is_auipc ? pc + imm_u : (is_jal | is_jalr) ? pc + 32'd4 : alu;
                    next_pc <= is_jal ? pc + imm_j : is_jalr ? (rs1v + imm_i) & ~32'd1
                             : (is_branch && taken) ? pc + imm_b : pc + 32'd4;
                    maddr <= rs1v + (is_store ? imm_s : imm_i);
                    state <= (is_load | is_store) ? MEM : WB;
                end
                MEM: state <= WB;
                default: begin  // WB
                    pc <= next_pc;
                    state <= FETCH;
                end
            endcase
        end
    end

    assign rvfi_valid = !reset && state == WB;
    assign rvfi_pc = pc;
    assign rvfi_insn = ir;
    assign rvfi_rd = writes_rd ? rd : 5'd0;
    assign rvfi_rd_wdata = wb_value;
// EVOLVE-BLOCK-END
endmodule
