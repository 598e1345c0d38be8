import { readFile } from 'node:fs/promises';
import { Tokenizer } from '@huggingface/tokenizers';
import { MODEL_MAX_TOKENS } from './model-artifact.ts';

/**
 * The model's tokenizer (BERT WordPiece: clean-up, lower-casing, accents stripped, CJK characters
 * split, `[CLS] … [SEP]`) read from its `tokenizer.json` by Hugging Face's own JavaScript
 * implementation. The file's own truncation (128) and padding are not applied: a text is cut to
 * {@link MODEL_MAX_TOKENS} tokens here, as sentence-transformers cuts it, and never padded.
 */
export class SentenceTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly sep: number,
  ) {}

  /** Reads `tokenizer.json`. */
  static async open(file: string): Promise<SentenceTokenizer> {
    const tokenizer = new Tokenizer(JSON.parse(await readFile(file, 'utf8')) as object, {});
    const sep = tokenizer.token_to_id('[SEP]');
    if (sep === undefined) throw new Error(`${file} has no [SEP] token: not a BERT tokenizer`);
    return new SentenceTokenizer(tokenizer, sep);
  }

  /**
   * The token ids of `text`, `[CLS]` first and `[SEP]` last, at most `maxTokens` (≥ 2) of them: a
   * longer text's end is cut off (`truncated`), as sentence-transformers does.
   */
  encode(text: string, maxTokens = MODEL_MAX_TOKENS): { ids: number[]; truncated: boolean } {
    const ids = this.tokenizer.encode(text).ids;
    if (ids.length <= maxTokens) return { ids, truncated: false };
    const cut = ids.slice(0, maxTokens);
    cut[maxTokens - 1] = this.sep;
    return { ids: cut, truncated: true };
  }

  /** The word pieces of `text`, without `[CLS]` and `[SEP]` (for inspection and tests). */
  tokens(text: string): string[] {
    return this.tokenizer.tokenize(text);
  }
}
