// Groups a callgrind profile's self cost (instructions) by kind of code, for issue 16's split of the cold
// client (docs/benchmarks.md, "Done means", the two experiments): `node dist/bench/callgrind-groups.js
// FILE...` prints one Markdown column per file, in millions of instructions. V8's JIT code has no symbols
// under valgrind, so JavaScript shows as the builtins it runs through plus unnamed code.
import { execFileSync } from 'node:child_process';
import { basename } from 'node:path';

/** First match wins, in this order. */
const GROUPS: readonly (readonly [string, RegExp])[] = [
  [
    'V8 optimising compiler',
    /v8::internal::(compiler|maglev|turboshaft)|OptimizedCompilationJob|Pipeline|RegisterAllocat|InstructionSelector|v8::internal::Zone|v8::internal::Assembler|Turbo/,
  ],
  [
    'parsing, bytecode, baseline compiling',
    /Scanner|Parser|PreParse|AstValueFactory|Utf16CharacterStream|interpreter::|baseline::|BytecodeArray|v8::internal::Compiler|DeclarationScope|Scope::|FuncNameInferrer|AstNodeFactory|SourceTextModule|ScriptCompiler/,
  ],
  [
    'GC',
    /Heap|Scaveng|MarkCompact|Marking|Sweep|Evacuat|MemoryAllocator|cppgc|Remembered|SlotSet|PagedSpace|NewSpace|MemoryChunk/,
  ],
  ['JavaScript: builtins, inline caches, interpreter', /Builtins_/],
  ['JavaScript: JIT code', /^\?\?\?:0x[0-9a-f]+ \[\?\?\?\]/],
  ['OpenSSL start-up', /ossl_|OPENSSL|EVP_|CRYPTO_|BN_|sprp|OBJ_|ASN1|X509|CONF_|ERR_/],
  ['libc (malloc, copies, locks)', /libc\.so|ld-linux|malloc|memcpy|memmove|memset|pthread/],
  ['Node and libuv C++', /node::|uv_|uv__/],
  ['other V8 runtime', /v8::|Runtime_/],
];

function groups(file: string): Map<string, number> {
  const text = execFileSync('callgrind_annotate', ['--threshold=100', '--inclusive=no', file], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const sums = new Map<string, number>([...GROUPS.map(([name]) => [name, 0] as [string, number]), ['rest', 0]]);
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const count = Number(m[1]!.replaceAll(',', ''));
    const symbol = m[2]!;
    if (symbol.includes('PROGRAM TOTALS')) {
      total = count;
      continue;
    }
    const group = GROUPS.find(([, pattern]) => pattern.test(symbol))?.[0] ?? 'rest';
    sums.set(group, sums.get(group)! + count);
  }
  sums.set('total', total);
  return sums;
}

const files = process.argv.slice(2);
if (files.length === 0) throw new Error('usage: node dist/bench/callgrind-groups.js CALLGRIND_FILE...');
const columns = files.map(groups);
const millions = (n: number) => Math.round(n / 1e6).toLocaleString('en-US');
console.log(`| kind | ${files.map((f) => basename(f)).join(' | ')} |`);
console.log(`|---|${files.map(() => '---|').join('')}`);
for (const name of columns[0]!.keys())
  console.log(`| ${name} | ${columns.map((c) => millions(c.get(name)!)).join(' | ')} |`);
