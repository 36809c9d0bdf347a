const ZERO = 0x30

/** 1*DIGIT up to Number.MAX_SAFE_INTEGER, else -1. Signs, spaces and lists are the caller's error. */
export function parseContentLength(value: string): number {
  const n = value.length
  if (n === 0) return -1
  let length = 0
  for (let i = 0; i < n; i++) {
    const d = value.charCodeAt(i) - ZERO
    if (d < 0 || d > 9) return -1
    length = length * 10 + d
    // Checked per digit so the sum never leaves the range where doubles are exact.
    if (length > Number.MAX_SAFE_INTEGER) return -1
  }
  return length
}
