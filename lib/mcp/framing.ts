// Newline-delimited framing of the MCP stdio transport: each JSON-RPC message is one line of
// UTF-8 ending in '\n' (messages must not contain raw newlines). Bytes arrive in arbitrary
// chunks, so a message may be split anywhere, even inside a multi-byte character: we work on
// Buffers and only cut at 0x0A, which never occurs inside a UTF-8 sequence.

export interface LineSplitterOptions {
  /** Longest line buffered whole. Longer lines are reported through onOversize. */
  maxLineBytes: number;
  /**
   * A complete line, without its '\n' (a '\r' before it is kept, so bytes round-trip), and the
   * same bytes with the '\n', to pass on unchanged without copying them again.
   */
  onLine: (line: Buffer, withNewline: Buffer) => void;
  /**
   * Part of a line longer than maxLineBytes: called with the bytes buffered so far and then with
   * each further piece; `end` is true for the piece that finishes the line.
   */
  onOversize: (piece: Buffer, end: boolean) => void;
}

export class LineSplitter {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private oversize = false;

  constructor(private readonly opts: LineSplitterOptions) {}

  /** True while in the middle of a line (bytes of it were received but not its end). */
  get midLine(): boolean {
    return this.buffered > 0 || this.oversize;
  }

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) {
        this.append(chunk.subarray(start));
        return;
      }
      if (this.oversize) {
        this.opts.onOversize(chunk.subarray(start, nl), true);
        this.oversize = false;
      } else if (this.buffered + (nl - start) > this.opts.maxLineBytes) {
        this.opts.onOversize(Buffer.concat([...this.chunks, chunk.subarray(start, nl)]), true);
        this.reset();
      } else {
        // The common case (a whole message in one chunk) avoids a copy.
        const piece = chunk.subarray(start, nl + 1);
        const raw = this.buffered === 0 ? piece : Buffer.concat([...this.chunks, piece]);
        this.reset();
        this.opts.onLine(raw.subarray(0, raw.length - 1), raw);
      }
      start = nl + 1;
    }
  }

  /** The stream ended: whatever is left is a final line without '\n'. Returns it (or null). */
  end(): Buffer | null {
    if (this.oversize) {
      this.oversize = false;
      this.opts.onOversize(Buffer.alloc(0), true);
      return null;
    }
    if (this.buffered === 0) return null;
    const rest = Buffer.concat(this.chunks);
    this.reset();
    return rest;
  }

  private append(piece: Buffer): void {
    if (this.oversize) {
      this.opts.onOversize(piece, false);
      return;
    }
    if (this.buffered + piece.length > this.opts.maxLineBytes) {
      this.oversize = true;
      this.opts.onOversize(Buffer.concat([...this.chunks, piece]), false);
      this.reset();
      return;
    }
    // Copy: the caller may reuse its chunk buffer after push() returns.
    this.chunks.push(Buffer.from(piece));
    this.buffered += piece.length;
  }

  private reset(): void {
    this.chunks = [];
    this.buffered = 0;
  }
}
