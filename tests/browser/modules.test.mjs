// The page's ES modules, statically (no server, no browser): every import in
// static/**/*.js names a file the server embeds (src/server/http.rs lists each with
// asset!, so a forgotten one fails here before a browser shows a blank page), and
// every name imported is exported by that module.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const staticDir = join(root, 'static');

/** The paths the server serves from static/ (`/js/api.js`), from http.rs's asset! list. */
function embedded() {
  const source = readFileSync(join(root, 'src/server/http.rs'), 'utf8');
  return new Set([...source.matchAll(/asset!\(\s*"([^"]+)"/g)].map((match) => match[1]));
}

/** Every .js file under static/, as the path the page asks for. */
function modules(dir = staticDir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return modules(path);
    return entry.name.endsWith('.js') ? [`/${relative(staticDir, path)}`] : [];
  });
}

const read = (path) => readFileSync(join(staticDir, path), 'utf8');

/** `import { a, b as c } from './x.js'` (and `import './x.js'`): [{names, specifier}]. */
function imports(source) {
  const found = [];
  for (const match of source.matchAll(/^import\s+(?:([\s\S]*?)\s+from\s+)?'([^']+)';/gm)) {
    const clause = match[1] ?? '';
    const named = clause.match(/^\{([\s\S]*)\}$/);
    assert.ok(!clause || named, `only named imports are checked: import ${clause} from '${match[2]}'`);
    const names = named ? named[1].split(',').map((part) => part.trim().split(/\s+as\s+/)[0]).filter(Boolean) : [];
    found.push({ names, specifier: match[2] });
  }
  return found;
}

/** The names a module exports (`export function|const|let|class NAME`, `export { … }`). */
function exportsOf(source) {
  const names = new Set();
  for (const match of source.matchAll(/^export\s+(?:async\s+)?(?:function\*?|const|let|class)\s+([\w$]+)/gm)) names.add(match[1]);
  for (const match of source.matchAll(/^export\s*\{([^}]*)\}/gm)) {
    for (const part of match[1].split(',')) if (part.trim()) names.add(part.trim().split(/\s+as\s+/).pop());
  }
  return names;
}

test('every module in static/ is embedded and the page loads app.js as a module', () => {
  const served = embedded();
  const files = modules();
  assert.ok(files.length > 10, `the page is split into modules: ${files}`);
  for (const file of files) assert.ok(served.has(file), `${file} is not embedded: add asset!("${file}", JS) to src/server/http.rs`);
  for (const path of served) assert.ok(existsSync(join(staticDir, path)), `http.rs embeds ${path}, which is missing`);
  const html = readFileSync(join(staticDir, 'index.html'), 'utf8');
  assert.match(html, /<script type="module" src="\/app\.js"><\/script>/);
  // Preloaded, the modules arrive in one round trip instead of one per level of imports.
  const preloaded = [...html.matchAll(/<link rel="modulepreload" href="([^"]+)">/g)].map((match) => match[1]);
  assert.deepEqual(preloaded.slice().sort(), files.slice().sort(), 'index.html preloads exactly the modules in static/');
});

test('every import resolves to an embedded module that exports what is imported', () => {
  const served = embedded();
  let checked = 0;
  for (const file of modules()) {
    const source = read(file);
    // A module that imports anything imports it at its top, in the forms checked here.
    assert.doesNotMatch(source, /\bimport\s*\(/, `${file}: dynamic import() is not checked`);
    assert.doesNotMatch(source, /^export\s+default\b/m, `${file}: default exports are not checked`);
    for (const { names, specifier } of imports(source)) {
      assert.match(specifier, /^\.\.?\//, `${file}: ${specifier} is not relative (no build step resolves bare names)`);
      const target = new URL(specifier, `http://page${file}`).pathname;
      assert.ok(served.has(target), `${file} imports ${specifier} (${target}), which http.rs does not embed`);
      const exported = exportsOf(read(target));
      for (const name of names) assert.ok(exported.has(name), `${file} imports ${name} from ${target}, which does not export it`);
      checked += 1;
    }
  }
  assert.ok(checked > 20, `the imports were found (${checked})`);
});

test('a module starts with a comment saying what it owns', () => {
  for (const file of modules()) {
    assert.match(read(file), /^\/\/ \S/, `${file} starts with a comment`);
  }
});
