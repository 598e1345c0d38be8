/**
 * The mock embedding model: signed feature hashing of a text's words and word pairs.
 *
 * A text is lower-cased, cut into runs of letters and digits, stripped of a small list of English
 * stop words and lightly stemmed (plural -s/-es/-ies, -ing, -ed, a final -e), so "boards", "board"
 * and "boarding" meet. Every word (weight 1) and every pair of neighbouring words (weight 0.5) adds
 * `±(1 + ln tf)` to one coordinate, both chosen by a hash of the feature seeded with the model name;
 * the sum is L2-normalised. Texts sharing words and pairs therefore point the same way, unrelated
 * texts are nearly orthogonal, and the same model and text always give the same vector.
 */

/** Words too common to say what a text is about. */
const STOP_WORDS = new Set(
  (
    'a an the and or but if then else of to in on at by for with from into onto over under about as ' +
    'is are was were be been being am it its this that these those there here i me my we our us you your ' +
    'he him his she her they them their what which who whom how when where why do does did done ' +
    'have has had not no so too very can could will would should may might must just than also ' +
    'up down out off all any some each more most such only own same'
  ).split(' '),
);

/** The weight of a word pair relative to a single word. */
const BIGRAM_WEIGHT = 0.5;

/** Coordinates are rounded to this many decimals: short JSON, still unit length within 1e-6. */
const ROUNDING = 1e8;

const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;

function isWordChar(code: number, text: string, at: number): boolean {
  if (code < 128) return (code >= 97 && code <= 122) || (code >= 48 && code <= 57);
  // A surrogate pair is looked at whole.
  return LETTER_OR_DIGIT.test(String.fromCodePoint(text.codePointAt(at)!));
}

/** Calls `visit` with each run of letters and digits of `text` (lower-cased already). */
function forEachWord(text: string, visit: (word: string) => void): void {
  let start = -1;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 0xdc00 && code <= 0xdfff && start >= 0) continue; // the low half of a pair in a word
    if (isWordChar(code, text, i)) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      visit(text.slice(start, i));
      start = -1;
    }
  }
  if (start >= 0) visit(text.slice(start));
}

function isVowel(char: string): boolean {
  return char === 'a' || char === 'e' || char === 'i' || char === 'o' || char === 'u' || char === 'y';
}

function hasVowel(text: string, end: number): boolean {
  for (let i = 0; i < end; i += 1) if (isVowel(text[i]!)) return true;
  return false;
}

function hasDigit(text: string): boolean {
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 48 && code <= 57) return true;
  }
  return false;
}

/** "cutt" → "cut", "plann" → "plan" (but "drill", "pass", "buzz" keep their pair). */
function undouble(stem: string): string {
  const last = stem[stem.length - 1]!;
  const doubled = stem.length > 2 && stem[stem.length - 2] === last && !isVowel(last) && last !== 'l' && last !== 's' && last !== 'z';
  return doubled ? stem.slice(0, -1) : stem;
}

/**
 * A light English stemmer (plural -s/-es/-ies, -ing, -ed, a final -e): enough for plurals and the
 * common verb forms to meet ("wire", "wiring", "wired" → "wir"). Words with digits stay as they are.
 */
function stem(word: string): string {
  if (word.length <= 3 || hasDigit(word)) return word;
  let w = word;
  if (w.endsWith('ies') && w.length > 4) w = `${w.slice(0, -3)}y`;
  else if (w.endsWith('sses')) w = w.slice(0, -2);
  else if (w.endsWith('xes') || w.endsWith('zes') || w.endsWith('ches') || w.endsWith('shes')) w = w.slice(0, -2);
  else if (w.endsWith('s') && !w.endsWith('ss') && !w.endsWith('us') && !w.endsWith('is')) w = w.slice(0, -1);

  if (w.length > 5 && w.endsWith('ing') && hasVowel(w, w.length - 3)) w = undouble(w.slice(0, -3));
  else if (w.length > 4 && w.endsWith('ed') && hasVowel(w, w.length - 2)) w = undouble(w.slice(0, -2));

  if (w.length > 3 && w.endsWith('e')) w = w.slice(0, -1);
  return w;
}

/** A word's term, or `undefined` for a stop word or a single letter. */
function termOf(word: string): string | undefined {
  if (STOP_WORDS.has(word) || (word.length === 1 && !hasDigit(word))) return undefined;
  return stem(word);
}

/** FNV-1a over the UTF-16 code units of `text`, continuing from `hash`. */
function fnv1a(text: string, hash: number): number {
  let h = hash;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3's finaliser: spreads FNV's weak low bits over the whole word. */
function fmix32(hash: number): number {
  let h = hash;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const FNV_OFFSET = 0x811c9dc5;

/** The empty text's fixed feature; no term contains it. */
const EMPTY_FEATURE = '\u0000';

/** A word with no term (a stop word), in the batch cache; hash states are unsigned. */
const DROPPED = -1;

/** Counts equal values of a sorted run and adds each distinct value once with its count. */
function addCounted(sorted: Uint32Array, add: (hash: number, tf: number) => void): void {
  let i = 0;
  while (i < sorted.length) {
    let j = i + 1;
    while (j < sorted.length && sorted[j] === sorted[i]) j += 1;
    add(sorted[i]!, j - i);
    i = j;
  }
}

/**
 * Embeds texts for one model name and dimension. The model name seeds the hash, so another model
 * name gives another (equally consistent) vector space, as a real model change would.
 */
export class HashEmbedder {
  private readonly seed: number;

  constructor(
    readonly model: string,
    readonly dimensions: number,
  ) {
    if (!Number.isInteger(dimensions) || dimensions < 1) throw new RangeError(`dimensions must be a positive integer, got ${dimensions}`);
    this.seed = fnv1a(model, FNV_OFFSET);
  }

  /** The unit vector of `text`; a text with no terms left gets one fixed unit vector. */
  embed(text: string): number[] {
    return this.vectorOf(text, new Map());
  }

  /** The unit vectors of `texts`, in order (a word met again in the batch is not stemmed or hashed again). */
  embedMany(texts: readonly string[]): number[][] {
    const cache = new Map<string, number>();
    return texts.map((text) => this.vectorOf(text, cache));
  }

  /** `cache`: word → the hash state of its term, or {@link DROPPED}. */
  private vectorOf(text: string, cache: Map<string, number>): number[] {
    const states: number[] = [];
    forEachWord(text.toLowerCase(), (word) => {
      let state = cache.get(word);
      if (state === undefined) {
        const term = termOf(word);
        state = term === undefined ? DROPPED : fnv1a(term, this.seed);
        cache.set(word, state);
      }
      if (state !== DROPPED) states.push(state);
    });

    // Features are counted by their final hash, sorted (collisions of 32-bit hashes in one text are negligible).
    const words = new Uint32Array(Math.max(1, states.length));
    const pairs = new Uint32Array(Math.max(0, states.length - 1));
    if (states.length === 0) words[0] = fmix32(fnv1a(EMPTY_FEATURE, this.seed));
    for (let i = 0; i < states.length; i += 1) {
      words[i] = fmix32(states[i]!);
      // A pair mixes both terms' states, in order ("garden bed" is not "bed garden").
      if (i > 0) pairs[i - 1] = fmix32(Math.imul(fnv1a(' ', states[i - 1]!) ^ states[i]!, 0x01000193) >>> 0);
    }
    words.sort();
    pairs.sort();

    const vector = new Float64Array(this.dimensions);
    const adder = (weight: number) => (hash: number, tf: number) => {
      const value = (1 + Math.log(tf)) * weight;
      vector[(hash >>> 1) % this.dimensions]! += hash & 1 ? value : -value;
    };
    addCounted(words, adder(1));
    addCounted(pairs, adder(BIGRAM_WEIGHT));

    let squares = 0;
    for (const value of vector) squares += value * value;
    if (squares === 0) {
      // Every feature cancelled out (only likely in very few dimensions): use the fixed vector.
      vector[(fmix32(fnv1a(EMPTY_FEATURE, this.seed)) >>> 1) % this.dimensions] = 1;
      squares = 1;
    }
    const norm = Math.sqrt(squares);
    const result = new Array<number>(this.dimensions);
    for (let i = 0; i < this.dimensions; i += 1) result[i] = Math.round((vector[i]! / norm) * ROUNDING) / ROUNDING;
    return result;
  }
}
