'use strict';
/**
 * The Node side of the fast provider loader (compute/provider_loader.py), preloaded into
 * jsii's Node process with `--require`.
 *
 * When jsii loads the AWS provider's assembly, it requires the package's `lib/index.js`, which
 * requires all 2,212 resource modules one after the other (267 MB of JavaScript; about 3.5 of
 * the 4.7 CPU-seconds jsii's process spent on a synth of both environments, measured). Each
 * line of that index is `exports.<name> = require("./<module>");`. This hook hands Node the
 * same index with each such line turned into a getter that requires its module on first use:
 * jsii reaches a class by walking its fully qualified name through these exports, so the
 * modules a synth never touches are never read or compiled.
 *
 * An index of any other shape (a require it does not recognise) is left exactly as it is, so the
 * worst case is the stock, eager load. Nothing else is touched: only a `lib/index.js` whose
 * package is `@cdktf/provider-aws`.
 */
const fs = require('node:fs');
const path = require('node:path');
const { registerHooks } = require('node:module');
const { fileURLToPath } = require('node:url');

const PACKAGE = '@cdktf/provider-aws';
const INDEX = '/lib/index.js';
const EAGER_LINE = /^exports\.([A-Za-z_$][\w$]*) = require\("(\.\/[\w.-]+)"\);$/gm;
const LAZY_EXPORT =
  'function __lazyExport(name, id) { let value; Object.defineProperty(exports, name, ' +
  '{ configurable: true, enumerable: true, get() { return (value ??= require(id)); } }); }';

function packageName(indexFile) {
  try {
    const manifest = path.join(path.dirname(path.dirname(indexFile)), 'package.json');
    return JSON.parse(fs.readFileSync(manifest, 'utf8')).name;
  } catch {
    return undefined;
  }
}

/** The index with every eager line made a getter, or `undefined` if any require is not one. */
function lazyIndex(source) {
  let lazy = 0;
  const body = source.replace(EAGER_LINE, (_, name, id) => {
    lazy += 1;
    return `__lazyExport(${JSON.stringify(name)}, ${JSON.stringify(id)});`;
  });
  const requires = source.split('require(').length - 1;
  return lazy > 0 && lazy === requires ? `${LAZY_EXPORT}\n${body}` : undefined;
}

// Node releases before 22.15 have no synchronous module hooks: they load the index eagerly.
if (typeof registerHooks === 'function') {
  registerHooks({
    load(url, context, nextLoad) {
      const loaded = nextLoad(url, context);
      if (!url.startsWith('file:') || !url.endsWith(INDEX)) return loaded;
      const file = fileURLToPath(url);
      if (packageName(file) !== PACKAGE) return loaded;
      const source = lazyIndex(String(loaded.source ?? fs.readFileSync(file, 'utf8')));
      return source === undefined ? loaded : { ...loaded, source };
    },
  });
}
