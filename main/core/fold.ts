// Text folded for searching the way a Vietnamese shop owner types: without accents, in any case.
// "thi lan" finds "Thị Lan", "DUONG" finds "Dương". The store registers it as an SQL function so
// the comparison happens in the query.

/** Lower case, no diacritics, đ → d. */
export function foldText(s: string): string {
  return s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[đĐ]/g, 'd')
    .toLowerCase();
}
