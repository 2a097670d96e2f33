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

/** A getter of `%TypedArray%.prototype`: it reads a typed array's internal slots, and throws for anything else. */
function typedArrayGetter(name: 'buffer' | 'byteOffset' | 'byteLength'): (this: unknown) => unknown {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- a getter, always called with .call(value)
  return Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype) as object, name)!.get!;
}
const typedArrayBuffer = typedArrayGetter('buffer');
const typedArrayOffset = typedArrayGetter('byteOffset');
const typedArrayByteLength = typedArrayGetter('byteLength');
/** `%TypedArray%.prototype.set`: given a typed array, it reads that array's bytes through its internal slots. */
// eslint-disable-next-line @typescript-eslint/unbound-method -- always called with .call(target)
const typedArraySet = (Object.getPrototypeOf(Uint8Array.prototype) as Uint8Array).set;
/**
 * The largest typed array V8 keeps inside its own heap (`Buffer.alloc(64)` is one). Asking such an array for its
 * `buffer` moves its bytes out into a newly allocated backing store (freed later by the collector): several
 * times the cost of copying them.
 */
const IN_HEAP_MAX_BYTES = 64;

/** Whether `value` is a `Uint8Array` (a `Buffer` too), of any realm. */
export function isUint8Array(value: unknown): value is Uint8Array {
  return typedArrayKind.call(value) === 'Uint8Array';
}

/**
 * `value`'s bytes as a plain `Uint8Array` of this realm, made from what the built-ins say of it (its buffer,
 * offset and length), or undefined when it is no `Uint8Array` (a `Proxy` of one is not one): a view of the same
 * bytes, or, for at most 64 bytes, a copy of them. What an adapter hands the session: the frame header's length
 * and the bytes the transport sends are then the same bytes, whatever the array's realm, own properties or
 * subclass claim (a Node `Buffer`'s `slice()` is a view, not a copy).
 */
export function asUint8Array(value: unknown): Uint8Array | undefined {
  if (!isUint8Array(value)) return undefined;
  const length = typedArrayByteLength.call(value) as number;
  // (A detached one has no bytes left, and no view can be made of its buffer.)
  if (length === 0) return new Uint8Array(0);
  if (length <= IN_HEAP_MAX_BYTES) {
    // A small array may live in V8's heap, where a view would first move it out: copied, through the built-in.
    const copy = new Uint8Array(length);
    typedArraySet.call(copy, value);
    return copy;
  }
  return new Uint8Array(typedArrayBuffer.call(value) as ArrayBuffer, typedArrayOffset.call(value) as number, length);
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

/** A typed array's length in bytes, as the built-in says (whatever its own properties claim); else undefined. */
export function byteLengthOf(value: unknown): number | undefined {
  try {
    return typedArrayByteLength.call(value) as number;
  } catch {
    return undefined;
  }
}

/** `%TypedArray%.prototype.at`: it throws for a view whose buffer is detached or that a resize left out of bounds. */
// eslint-disable-next-line @typescript-eslint/unbound-method -- always called with .call(view)
const typedArrayAt = (Object.getPrototypeOf(Uint8Array.prototype) as Uint8Array).at;

/**
 * Whether an empty-looking `view` is one that lost its bytes: its buffer was detached (transferred to a worker
 * by `postMessage`, by `structuredClone`), or resized so that the view is out of bounds. Both read as empty, as
 * an empty array does, where an application wrote bytes. (Of any realm; `ArrayBuffer.prototype.detached` is
 * newer than some runtimes muxwire runs on.)
 */
export function lostBytes(view: unknown): boolean {
  if (byteLengthOf(view) !== 0) return false; // (not a typed array, or one with bytes)
  try {
    typedArrayAt.call(view, 0);
    return false;
  } catch {
    return true;
  }
}
