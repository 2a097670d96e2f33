/**
 * The bytes behind the characters a `Readable` holds once `setEncoding()` was called: Node then counts what
 * waits in decoded characters (`readableLength`), which are fewer than the bytes for UTF-8 text and more for
 * hex, while a channel's window must credit bytes. Each addition is kept as a pair (its characters, its
 * bytes); reading takes characters from the oldest pairs and the bytes go with them, in proportion within a
 * pair read in part (for UTF-8, at most a byte per character until the pair is read whole). So the count
 * never goes below what is still held, whatever the text decodes to (bytes that are not UTF-8 become one
 * character each, which re-encodes to three bytes).
 * @module
 */
export class EncodedCount {
  /**
   * UTF-8: characters of one to three bytes (a surrogate pair, four, is two characters): a pair read in part
   * gives up at most one byte per character read, the rest once it is read whole. Other encodings have one
   * width (latin1, hex, utf16le, base64), and the proportion is exact.
   */
  readonly #variable: boolean;

  constructor(encoding: string) {
    this.#variable = encoding === 'utf8' || encoding === 'utf-8';
  }

  /** `read()` calls on the stack, and what their 'data' listeners put back meanwhile (counted after them). */
  #reading = 0;
  #putBack: [chars: number, bytes: number][] | undefined;

  /** Characters and bytes of each addition not yet read, oldest first, from `#head`. */
  #chars: number[] = [];
  #bytes: number[] = [];
  #head = 0;
  /** Bytes held in the decoder (part of a character) until characters come with them. */
  #carry = 0;
  #total = 0;

  /** Bytes behind the characters still held. */
  get bytes(): number {
    return this.#total;
  }

  /** `chars` characters came from `bytes` bytes; `front`: put back before the rest (`unshift`). */
  added(chars: number, bytes: number, front = false): void {
    this.#total += bytes;
    if (chars <= 0) {
      this.#carry += bytes;
      return;
    }
    if (front) {
      if (this.#head > 0) {
        this.#head--;
        this.#chars[this.#head] = chars;
        this.#bytes[this.#head] = bytes;
      } else {
        this.#chars.unshift(chars);
        this.#bytes.unshift(bytes);
      }
      return;
    }
    this.#chars.push(chars);
    this.#bytes.push(bytes + this.#carry);
    this.#carry = 0;
  }

  /** A `read()` starts: what its 'data' listeners put back is counted once it has counted what it took. */
  readStarted(): void {
    this.#reading++;
  }

  /** That `read()` took `chars` characters (`empty`: nothing waits any more). */
  readEnded(chars: number, empty: boolean): void {
    if (empty) this.clear();
    else this.read(chars);
    const putBack = this.#putBack;
    if (--this.#reading === 0 && putBack !== undefined) {
      this.#putBack = undefined;
      for (const [back, bytes] of putBack.reverse()) this.added(back, bytes, true);
    }
  }

  /** `chars` characters came back from `bytes` bytes (`unshift`), before the rest. */
  putBack(chars: number, bytes: number): void {
    if (this.#reading > 0) (this.#putBack ??= []).push([chars, bytes]);
    else this.added(chars, bytes, true);
  }

  /** `chars` characters were read. */
  read(chars: number): void {
    const allChars = this.#chars;
    const allBytes = this.#bytes;
    while (chars > 0 && this.#head < allChars.length) {
      const i = this.#head;
      const held = allChars[i]!;
      if (held <= chars) {
        chars -= held;
        this.#total -= allBytes[i]!;
        this.#head++;
        continue;
      }
      const proportion = Math.floor((allBytes[i]! * chars) / held);
      const taken = this.#variable ? Math.min(proportion, chars) : proportion;
      allChars[i] = held - chars;
      allBytes[i] = allBytes[i]! - taken;
      this.#total -= taken;
      chars = 0;
    }
    if (this.#head > 64 && this.#head * 2 > allChars.length) {
      this.#chars = allChars.slice(this.#head);
      this.#bytes = allBytes.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Nothing is held any more. */
  clear(): void {
    this.#chars = [];
    this.#bytes = [];
    this.#head = 0;
    this.#carry = 0;
    this.#total = 0;
  }
}
