// What any text a caller sends must be, wherever it is sent: ids, keys and names fit the database's varchar(255),
// and nothing PostgreSQL cannot store faithfully gets in.

/** Characters an id, key or name may have (appUserId, order ids, idempotency keys, ...). */
export const MAX_ID_CHARS = 255;

/**
 * Half of a UTF-16 pair on its own: the database stores it as U+FFFD, so two different ids would become one
 * (and PostgreSQL's jsonb refuses it outright).
 */
export const LONE_SURROGATE = /\p{Cs}/u;

/** Why a text cannot be stored as given, or null. */
export function unstorableText(value: string): string | null {
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  if (LONE_SURROGATE.test(value)) return 'must be well-formed Unicode (it holds a lone surrogate)';
  return null;
}
