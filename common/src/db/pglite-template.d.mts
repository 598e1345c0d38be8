import type { PGlite, PGliteOptions } from '@electric-sql/pglite';

/** See pglite-template.mjs. */
export function templateDir(): string;
export function readTemplate(): Promise<Blob | undefined>;
export function saveTemplate(db: PGlite): Promise<void>;
export function createFromTemplate(pglite: typeof PGlite, dataDir: string, options?: PGliteOptions): Promise<PGlite>;
