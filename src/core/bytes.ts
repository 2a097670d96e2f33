/**
 * Bytes made in another realm. A `Uint8Array` or `ArrayBuffer` from a `vm` context, a test runner's sandbox
 * (Jest runs each test file in one, and Node's own `Buffer`s come from outside it) or another frame fails
 * `instanceof` against this realm's constructors, though its bytes are as good, and Node's streams take them.
 * These checks ask for the object's built-in type instead, after the cheap `instanceof` that decides nearly
 * every call.
 * @module
 */

/** `value` as a `Uint8Array` of this realm (itself when it is one), or undefined when it is no `Uint8Array`. */
export function asUint8Array(value: unknown): Uint8Array | undefined {
  if (value instanceof Uint8Array) return value;
  return ArrayBuffer.isView(value) && Object.prototype.toString.call(value) === '[object Uint8Array]'
    ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
    : undefined;
}

/** Whether `value` is an `ArrayBuffer`, of any realm (a `SharedArrayBuffer` is not one). */
export function isArrayBuffer(value: unknown): value is ArrayBuffer {
  return value instanceof ArrayBuffer || Object.prototype.toString.call(value) === '[object ArrayBuffer]';
}
