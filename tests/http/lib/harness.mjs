// harness.mjs - the test registry of the HTTP suite: every declarative step and every
// programmatic check is one test, printed as it finishes, counted in the final line.

export class Harness {
  constructor() {
    this.passed = 0;
    this.failed = 0;
    this.failures = [];
    this.prefix = ''; // e.g. "[dynamodb] ": names every test of one backend's run
  }

  // Runs fn as one test; a thrown error (or a rejected promise) is a failure.
  async test(name, fn) {
    name = this.prefix + name;
    const t0 = Date.now();
    try {
      await fn();
      this.passed++;
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
      return true;
    } catch (e) {
      this.failed++;
      const why = e && e.message ? e.message : String(e);
      this.failures.push({ name, why });
      console.log(`FAIL ${name}\n     ${why.split('\n').join('\n     ')}`);
      return false;
    }
  }

  // Records a failure without running anything (e.g. a step that could not start).
  fail(name, why) {
    name = this.prefix + name;
    this.failed++;
    this.failures.push({ name, why });
    console.log(`FAIL ${name}\n     ${why}`);
  }

  section(title) {
    console.log(`\n== ${title}`);
  }
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

export function assertEq(actual, expected, what) {
  if (!deepEqual(actual, expected))
    throw new Error(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

export function show(v) {
  const s = v === undefined ? 'undefined' : JSON.stringify(v);
  return s && s.length > 400 ? s.slice(0, 400) + '...' : s;
}

export function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Decodes standard base64 strictly: padded, canonical, standard alphabet.
export function base64Bytes(s) {
  if (typeof s !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s))
    return null;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : null;
}
