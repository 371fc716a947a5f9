// The TypeScript linter: ESLint's and typescript-eslint's recommended rules, nothing custom.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/', 'binding.js', 'binding.d.ts', 'npm/', 'target/', 'node_modules/', 'models/', 'bench/node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.{js,mjs,cjs}'],
    languageOptions: { globals: { ...Object.fromEntries(['process', 'console', 'require', 'module', '__dirname', 'Buffer', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'URL', 'fetch', 'AbortController', 'performance', 'TextEncoder', 'TextDecoder', 'structuredClone', 'setImmediate', 'queueMicrotask', 'AbortSignal'].map((g) => [g, 'readonly'])) } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Tests poke at JSON of any shape and load built files by path.
    files: ['__test__/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Unused names are errors, except the conventional `_` prefix for a required-but-unused parameter.
    rules: { '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }] },
  },
)
