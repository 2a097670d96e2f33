// ESLint for muxwire: typescript-eslint's strict and stylistic type-checked rules over the TypeScript projects
// (tsconfig.json: src, test, examples; bench/tsconfig.json: bench), and the plain recommended rules over the
// few JavaScript files. `npm run lint` runs it; `npm test` runs it too, so CI holds it.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  {
    ignores: ['dist/', 'node_modules/', '**/node_modules/', 'bench/results/', '.cache/'],
  },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.strictTypeChecked, tseslint.configs.stylisticTypeChecked],
    languageOptions: {
      parserOptions: {
        // Each file is checked with the nearest tsconfig.json: bench/ has its own, the rest is the root one.
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // node:test's test() and describe() return promises that the runner itself awaits and reports.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      // Counts, sizes and durations in messages are numbers; the rule still rejects objects, nullish and any.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // A one-line arrow such as `() => channel.resume()` used as a callback says what it does; braces add nothing.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // With noUncheckedIndexedAccess, `!` marks an index or lookup the code knows is there (decoders, schedulers,
      // tests); no-unnecessary-type-assertion still removes the ones that assert nothing.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Empty arrows are deliberate no-op callbacks: a listener that swallows an expected error, a test's sink.
      '@typescript-eslint/no-empty-function': ['error', { allow: ['arrowFunctions'] }],
    },
  },
  {
    // The JavaScript files (scripts/, the libp2p compliance runner, this file) belong to no TypeScript project,
    // so they get the untyped rules, and Node's globals that they use.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      sourceType: 'module',
      globals: {
        console: 'readonly',
        process: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        AbortController: 'readonly',
        Promise: 'readonly',
      },
    },
  },
);
