// matrix.mjs - the interop matrix: every test is filed under (row, column); a cell passes when
// all of its tests passed. Rendered as a Markdown table (stdout and tests/interop/MATRIX.md).

export class Matrix {
  constructor(title, rows, columns) {
    this.title = title;
    this.rows = rows; // [{key, label}]
    this.columns = columns; // [{key, label}]
    this.cells = new Map(); // "row|col" -> {pass, fail}
  }

  record(row, col, ok) {
    if (!this.rows.some((r) => r.key === row)) throw new Error(`matrix ${this.title}: no row ${row}`);
    if (!this.columns.some((c) => c.key === col)) throw new Error(`matrix ${this.title}: no column ${col}`);
    const k = `${row}|${col}`;
    const c = this.cells.get(k) || { pass: 0, fail: 0 };
    if (ok) c.pass++;
    else c.fail++;
    this.cells.set(k, c);
  }

  cell(row, col) {
    const c = this.cells.get(`${row}|${col}`);
    if (!c) return 'n/a';
    const n = c.pass + c.fail;
    return c.fail ? `**FAIL** (${c.fail}/${n})` : `ok (${n})`;
  }

  render() {
    const head = ['', ...this.columns.map((c) => c.label)];
    const lines = [
      `| ${head.join(' | ')} |`,
      `|${head.map(() => '---').join('|')}|`,
    ];
    for (const r of this.rows) {
      lines.push(`| ${[r.label, ...this.columns.map((c) => this.cell(r.key, c.key))].join(' | ')} |`);
    }
    return lines.join('\n');
  }
}
