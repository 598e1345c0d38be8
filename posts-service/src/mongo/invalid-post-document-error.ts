import { AppError } from '@civildiy/common';

/**
 * 500 `posts.invalid_document`: a document of the posts collection is not a post as this service
 * writes them (edited by hand, or corrupted). The read fails loudly (logged with the id and what is
 * wrong) instead of answering a malformed post.
 */
export class InvalidPostDocumentError extends AppError {
  constructor(
    /** The document's `_id`, as found. */
    readonly documentId: unknown,
    cause: unknown,
  ) {
    super(500, 'posts.invalid_document', `The stored post ${String(documentId)} is not a valid post document`, { cause });
  }
}
