/** 1 for each tchar of RFC 9110 §5.6.2, indexed by byte (latin1 char code). */
export const TOKEN_CHARS: Uint8Array = (() => {
  const table = new Uint8Array(256)
  for (const ch of "!#$%&'*+-.^_`|~") table[ch.charCodeAt(0)] = 1
  for (let c = 0x30; c <= 0x39; c++) table[c] = 1
  for (let c = 0x41; c <= 0x5a; c++) table[c] = 1
  for (let c = 0x61; c <= 0x7a; c++) table[c] = 1
  return table
})()

export function isToken(value: string): boolean {
  if (value.length === 0) return false
  for (let i = 0; i < value.length; i++) {
    if (TOKEN_CHARS[value.charCodeAt(i)] !== 1) return false
  }
  return true
}

/**
 * Compares value[at, at + lower.length) with an all-lowercase ASCII word. OR-ing 0x20 folds only
 * letters onto lowercase letters and leaves '-' and digits alone, which is all the words we match need.
 */
export function equalsIgnoreCaseAt(value: string, at: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    if ((value.charCodeAt(at + i) | 0x20) !== lower.charCodeAt(i)) return false
  }
  return true
}
