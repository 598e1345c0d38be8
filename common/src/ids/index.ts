import { v5 as uuidv5, v7 as uuidv7, validate, version } from 'uuid';

/** The project's UUIDv5 namespace: every derived id in CivilDIY is made under it. */
export const CIVILDIY_NAMESPACE = '6f1c7b1e-3a55-5d8e-9a43-2f0c6a7e9b10';

/** A new time-ordered id (UUIDv7) for a new entity. */
export function newId(): string {
  return uuidv7();
}

/**
 * A deterministic id (UUIDv5 in the project namespace) derived from a business key, so that a retry
 * derives the same id: `derivedId('notification', orderId, 'confirmed')`. Parts are joined with `:`.
 */
export function derivedId(...parts: (string | number)[]): string {
  if (parts.length === 0) throw new TypeError('derivedId needs at least one part');
  return uuidv5(parts.join(':'), CIVILDIY_NAMESPACE);
}

/** Whether `value` is a UUID, optionally of one version. */
export function isUuid(value: string, ofVersion?: number): boolean {
  return validate(value) && (ofVersion === undefined || version(value) === ofVersion);
}
