/**
 * Bytes made in another realm. A `Uint8Array` or `ArrayBuffer` from a `vm` context, a test runner's sandbox
 * (Jest runs each test file in one, and Node's own `Buffer`s come from outside it) or another frame fails
 * `instanceof` against this realm's constructors, though its bytes are as good, and Node's streams take them.
 * These checks ask the built-ins themselves (their getters read the object's internal slots, whatever its realm
 * or its own properties claim), after the cheap `instanceof` that decides nearly every call.
 * @module
 */

/** `%TypedArray%.prototype[Symbol.toStringTag]`: a typed array's kind ("Uint8Array"), undefined for others. */
// eslint-disable-next-line @typescript-eslint/unbound-method -- a getter, always called with .call(value)
const typedArrayKind = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Uint8Array.prototype) as object,
  Symbol.toStringTag,
)!.get!;
/** `ArrayBuffer.prototype.byteLength`'s getter: it throws for anything but an ArrayBuffer (a shared one too). */
// eslint-disable-next-line @typescript-eslint/unbound-method -- a getter, always called with .call(value)
const arrayBufferLength = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength')!.get!;

/** `value` as a `Uint8Array` of this realm (itself when it is one), or undefined when it is no `Uint8Array`. */
export function asUint8Array(value: unknown): Uint8Array | undefined {
  if (value instanceof Uint8Array) return value;
  if (typedArrayKind.call(value) !== 'Uint8Array') return undefined;
  const view = value as Uint8Array;
  // (A detached one has no bytes left, and no view can be made of its buffer.)
  return view.byteLength === 0 ? new Uint8Array(0) : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Whether `value` is an `ArrayBuffer`, of any realm (a `SharedArrayBuffer` is not one). */
export function isArrayBuffer(value: unknown): value is ArrayBuffer {
  if (value instanceof ArrayBuffer) return true;
  try {
    arrayBufferLength.call(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether an empty-looking `view` is one whose buffer was detached (transferred: to a worker by `postMessage`,
 * by `structuredClone`), which reads as empty too, where an application wrote bytes. No view can be made of a
 * detached buffer (`ArrayBuffer.prototype.detached` is newer than some runtimes muxwire runs on).
 */
export function isDetached(view: ArrayBufferView): boolean {
  if (view.byteLength !== 0) return false;
  try {
    new Uint8Array(view.buffer);
    return false;
  } catch {
    return true;
  }
}
