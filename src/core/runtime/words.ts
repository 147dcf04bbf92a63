/**
 * Word splitting as systemd does it for unit settings and tmpfiles.d lines: words separated by
 * whitespace, "…" and '…' quote, backslash escapes in C style.
 */

const SIMPLE_ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"', "'": "'", s: ' ' };

/** Reads one escape after a backslash at `text[i]`; returns the characters and the length consumed. */
function escapeAt(text: string, i: number): [string, number] {
  const c = text[i];
  if (c === undefined) throw new Error('a line ends in a backslash');
  if (c in SIMPLE_ESCAPES) return [SIMPLE_ESCAPES[c]!, 1];
  if (c === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) return [String.fromCharCode(parseInt(text.slice(i + 1, i + 3), 16)), 3];
  if (/^[0-7]{3}$/.test(text.slice(i, i + 3))) return [String.fromCharCode(parseInt(text.slice(i, i + 3), 8)), 3];
  if (c === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) return [String.fromCodePoint(parseInt(text.slice(i + 1, i + 5), 16)), 5];
  throw new Error(`unknown escape \\${c}`);
}

/** C-style unescaping of a whole string (backslash escapes only, quotes kept). */
export function unescapeC(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '\\') {
      out += text[i];
      continue;
    }
    const [s, n] = escapeAt(text, i + 1);
    out += s;
    i += n;
  }
  return out;
}

/**
 * Splits up to `max` words off `text`; `rest` is what follows them (leading whitespace removed,
 * raw), or undefined when the text ran out first. Throws on an unclosed quote or a bad escape.
 */
export function splitWords(text: string, max = Infinity): { words: string[]; rest?: string } {
  const words: string[] = [];
  let i = 0;
  const space = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  for (;;) {
    while (space(text[i])) i++;
    if (i >= text.length) return { words };
    if (words.length >= max) return { words, rest: text.slice(i) };
    let word = '';
    let quote: string | undefined;
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (quote === undefined && space(c)) break;
      if (c === '\\') {
        const [s, n] = escapeAt(text, i + 1);
        word += s;
        i += n;
      } else if (quote !== undefined && c === quote) quote = undefined;
      else if (quote === undefined && (c === '"' || c === "'")) quote = c;
      else word += c;
    }
    if (quote !== undefined) throw new Error(`unclosed ${quote} quote`);
    words.push(word);
  }
}
