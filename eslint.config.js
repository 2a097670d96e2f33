// ESLint for muxwire: typescript-eslint's strict and stylistic type-checked rules over the TypeScript projects
// (tsconfig.json: src, test, examples; bench/tsconfig.json: bench), and the plain recommended rules over the
// few JavaScript files. `npm run lint` runs it; `npm test` runs it too, so CI holds it.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  {
    // A disable comment that no longer suppresses anything is an error, so none outlives its reason.
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  { ignores: ['dist/', 'node_modules/', '**/node_modules/', 'bench/results/', '.cache/'] },
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
      // The core's enums (FrameType, Flag, Pending) are `const enum`s only so that the compiler writes their numbers
      // in place (a smaller browser bundle); they are wire numbers, compared with numbers read from the wire.
      '@typescript-eslint/no-unsafe-enum-comparison': 'off',
      // Empty arrows and methods are deliberate no-ops: a listener that swallows an expected error, a hook a
      // subclass may fill, a test double's `pause() {}`, a Readable's `read() {}`.
      '@typescript-eslint/no-empty-function': ['error', { allow: ['arrowFunctions', 'methods', 'asyncMethods'] }],
      // A leading underscore marks a parameter or binding an interface requires but this code does not use.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      // An AbortSignal's reason is `any` by the platform's own typing, and the platform rejects with it as it is.
      '@typescript-eslint/prefer-promise-reject-errors': [
        'error',
        { allowThrowingAny: true, allowThrowingUnknown: true },
      ],
      // `async` without `await` is deliberate here: a method that must return a promise rejects instead of throwing
      // synchronously; dropping `async` to please the rule would change how its errors arrive.
      '@typescript-eslint/require-await': 'off',
      // `(...args: any[]) => void` is the type of "any listener": unknown[] would reject every typed listener.
      '@typescript-eslint/no-explicit-any': ['error', { ignoreRestArgs: true }],
      // `||` on strings is deliberate: an empty environment variable or message falls back to the default too.
      '@typescript-eslint/prefer-nullish-coalescing': ['error', { ignorePrimitives: { string: true } }],
      // It flags every downcast of a value that is an instance (a TLS socket typed as net.Socket, an error typed
      // as Error) as if it were a plain object; the code checks instanceof where the difference matters.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      // `this: void` declares a callback safe to pass on detached, which is what unbound-method asks for.
      '@typescript-eslint/no-invalid-void-type': ['error', { allowAsThisParameter: true }],
      // Public entry points check their arguments at run time for untyped (JavaScript) callers, and flags that a
      // callback flips are re-read after an await; this rule calls both "unnecessary", and obeying it would remove
      // the typed errors for bad input that the house rules require.
      '@typescript-eslint/no-unnecessary-condition': 'off',
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
        AbortSignal: 'readonly',
        TextDecoder: 'readonly',
        crypto: 'readonly',
        Buffer: 'readonly',
      },
    },
  },
  {
    // libp2p's compliance suite runs these under mocha, which provides its globals.
    files: ['test/libp2p-compliance/*.spec.mjs'],
    languageOptions: {
      globals: { describe: 'readonly', it: 'readonly', beforeEach: 'readonly', afterEach: 'readonly' },
    },
  },
);
