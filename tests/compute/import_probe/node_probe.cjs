'use strict';
/**
 * Preloaded (`--require`) into the Node processes of a synth the tests run: at exit, a process
 * that loaded any module of the AWS provider package (jsii's) writes their files, as a JSON
 * list, to `node-<pid>.json` in the folder `NODE_PROBE_DIR` names. The Node counterpart of
 * `sitecustomize.py` beside it.
 */
const fs = require('node:fs');
const path = require('node:path');

const folder = process.env.NODE_PROBE_DIR;
const PACKAGE = `${path.sep}@cdktf${path.sep}provider-aws${path.sep}`;

if (folder) {
  process.on('exit', () => {
    const loaded = Object.keys(require.cache).filter((file) => file.includes(PACKAGE));
    if (loaded.length > 0) {
      fs.writeFileSync(path.join(folder, `node-${process.pid}.json`), JSON.stringify(loaded.sort()));
    }
  });
}
