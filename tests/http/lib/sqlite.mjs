// sqlite.mjs - the sqlite3 CLI on a key store file (table items(branch_key_id, type, item),
// item = DynamoDB AttributeValue JSON).

import { execFileSync } from 'node:child_process';

export function sqlQuote(s) {
  return `'${String(s).replace(/'/g, "''")}'`;
}

// Runs SQL; returns stdout (trimmed). Waits for locks (the server may be running, WAL mode).
export function sqlite(dbPath, sql) {
  return execFileSync('sqlite3', ['-cmd', '.timeout 10000', dbPath, sql], { encoding: 'utf8', timeout: 30000 }).trim();
}

export function countVersionItems(dbPath, id) {
  return Number(sqlite(dbPath,
    `SELECT count(*) FROM items WHERE branch_key_id = ${sqlQuote(id)} AND type LIKE 'branch:version:%';`));
}

export function getItem(dbPath, id, type) {
  const text = sqlite(dbPath,
    `SELECT item FROM items WHERE branch_key_id = ${sqlQuote(id)} AND type = ${sqlQuote(type)};`);
  return text ? JSON.parse(text) : null;
}

export function putItemJson(dbPath, id, type, item) {
  sqlite(dbPath, `UPDATE items SET item = ${sqlQuote(JSON.stringify(item))} WHERE branch_key_id = ${sqlQuote(id)} AND type = ${sqlQuote(type)};`);
}
