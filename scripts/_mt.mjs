import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
const names = process.argv[2];
const r = await build({ stdin: { contents: "export { connectWebSocket } from './index.js';", resolveDir: path.resolve('dist/src/web'), loader: 'js' },
 bundle: true, minify: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, mangleProps: new RegExp('^(' + names + ')$'), logLevel:'silent'});
const b = r.outputFiles[0].contents; console.log(b.length, gzipSync(b,{level:9}).length);
