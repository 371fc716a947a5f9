// The TypeScript linter: ESLint's and typescript-eslint's recommended rules, and for the
// package's own sources the type-aware rules about promises: a promise nobody awaits or
// catches (a floating flush()) ends a user's process when it rejects.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/', 'binding.js', 'binding.d.ts', 'eurobert-ner.wasi*', 'wasi-worker*', 'npm/', 'target/', 'node_modules/', 'models/', 'bench/node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.{js,mjs,cjs}'],
    languageOptions: { globals: { ...Object.fromEntries(['process', 'console', 'require', 'module', '__dirname', 'Buffer', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'URL', 'fetch', 'AbortController', 'performance', 'TextEncoder', 'TextDecoder', 'structuredClone', 'setImmediate', 'queueMicrotask', 'AbortSignal', 'WebAssembly'].map((g) => [g, 'readonly'])) } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Tests poke at JSON of any shape and load built files by path.
    files: ['__test__/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['src/**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/only-throw-error': 'error',
    },
  },
  {
    // Unused names are errors, except the conventional `_` prefix for a required-but-unused parameter.
    rules: { '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }] },
  },
)
