/**
 * The frame types and flags as plain objects, for muxwire/core's users (the core itself uses the `const enum`s
 * of frame.ts, whose numbers the compiler writes in place).
 * @module
 */

/** Frame types. */
export const FrameType = { data: 0, windowUpdate: 1, ping: 2, goAway: 3 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Frame flags (a bit set). */
export const Flag = { syn: 0x1, ack: 0x2, fin: 0x4, rst: 0x8 } as const;
