// What a call really costs, and work whose caller has gone: the cost in window tokens checked
// before any forward pass, cancellation that stops native work, fair steps between callers,
// a pipeline-wide cancel for shutdowns, and the options that once cost more than linear time.
// Assertions count the tokens the model ran (onBatch), never wall-clock time.
import test from 'ava'

import { pipeline } from '..'
import { TooLargeError } from '../dist/pipeline/cost'
import { TINY_MODEL } from './helpers/fixtures'

const LONG = 'Erna Solberg besøkte Universitetet i Oslo, og Jonas Gahr Støre var i Bergen. '.repeat(400)

/** A pipeline that counts the window tokens each step ran. */
async function counted(options: { maxWaitMs?: number } = {}) {
  const steps: { texts: number; calls: number; tokens: number }[] = []
  const ner = await pipeline(TINY_MODEL, { threads: 1, ...options, onBatch: (texts, calls, tokens) => steps.push({ texts, calls, tokens }) })
  const ran = () => steps.reduce((n, s) => n + s.tokens, 0)
  return { ner, steps, ran }
}

test('cost: the window tokens a call will run, and a budget that refuses before any forward pass', async (t) => {
  const { ner, steps, ran } = await counted()
  const plain = await ner.cost(LONG)
  const dense = await ner.cost(LONG, { maxLength: 19, stride: 16 })
  t.true(plain.windows > 1 && plain.tokens > 0)
  // A short window with a large stride multiplies the work of the same text: what a budget sees.
  t.true(dense.tokens > 5 * plain.tokens, `${dense.tokens} vs ${plain.tokens}`)
  const err = await t.throwsAsync(ner(LONG, { maxLength: 19, stride: 16, maxTokens: plain.tokens * 2 }))
  t.true(err instanceof TooLargeError && err instanceof RangeError)
  t.regex(err!.message, new RegExp(`would run ${dense.tokens} tokens; the limit is ${plain.tokens * 2}`))
  t.is(steps.length, 0, 'nothing ran')
  // Within the budget it runs, and the steps ran exactly its cost.
  await ner(LONG, { maxTokens: plain.tokens })
  t.is(ran(), plain.tokens)
  // The snake_case twin, as every option has one.
  await t.throwsAsync(ner(LONG, { max_tokens: 1 }), { instanceOf: TooLargeError })
  ner.dispose()
})

test('an aborted call stops in the native pool: far fewer tokens run than it would cost, and the next call runs', async (t) => {
  const { ner, steps, ran } = await counted()
  const text = LONG.repeat(4)
  const { tokens } = await ner.cost(text)
  const controller = new AbortController()
  const call = ner(text, { signal: controller.signal })
  // Abort as soon as the first step is done (the steps are a fifth of a second of work).
  while (steps.length === 0) await new Promise((r) => setTimeout(r, 5))
  controller.abort()
  t.is((await t.throwsAsync(call))!.name, 'AbortError')
  await new Promise((r) => setTimeout(r, 300))
  const after = ran()
  t.true(after < tokens / 2, `${after} of ${tokens} tokens ran`)
  t.true(Array.isArray(await ner('Oslo')))
  ner.dispose()
})

test('a short call on an idle pipeline is tokenized and run in one native call; budgeted and long calls take two', async (t) => {
  const { ner } = await counted()
  const model = ner.model as unknown as Record<string, (...a: unknown[]) => unknown>
  const calls: string[] = []
  for (const name of ['prepareCall', 'prepareAndRun', 'runWindows']) {
    const f = model[name].bind(model)
    model[name] = (...a: unknown[]) => {
      calls.push(name)
      return f(...a)
    }
  }
  const text = 'Erna Solberg besøkte Universitetet i Oslo.'
  const one = await ner(text)
  t.deepEqual(calls, ['prepareAndRun'])
  calls.length = 0
  // The same answer by the two-hop path (a budget is checked between the hops).
  t.deepEqual(await ner(text, { maxTokens: 1000 }), one)
  t.deepEqual(calls, ['prepareCall', 'runWindows'])
  calls.length = 0
  await ner(LONG.slice(0, 2000))
  t.deepEqual(calls.slice(0, 2), ['prepareCall', 'runWindows'])
  // Aborted while its one native call runs: an AbortError, and the pipeline goes on.
  const controller = new AbortController()
  const call = ner(text.repeat(10), { signal: controller.signal })
  controller.abort()
  t.is((await t.throwsAsync(call))!.name, 'AbortError')
  t.deepEqual(await ner(text), one)
  ner.dispose()
})

test('a stream() consumer that stops early stops the documents in flight', async (t) => {
  const { ner, ran } = await counted()
  const docs = Array(32).fill(LONG)
  const total = (await ner.cost(LONG)).tokens * docs.length
  for await (const _ of ner.stream(docs, { highWaterMark: 32 })) break
  await new Promise((r) => setTimeout(r, 300))
  t.true(ran() < total / 2, `${ran()} of ${total} tokens ran`)
  t.true(Array.isArray(await ner('Oslo')))
  ner.dispose()
})

test('fair steps: a one-sentence call made while a long one runs shares the next step and resolves first', async (t) => {
  const { ner, steps } = await counted()
  const order: string[] = []
  // Long enough that many steps remain when the short call comes, even on a loaded machine
  // whose first steps are small.
  const long = ner(LONG.repeat(12)).then(() => order.push('long'))
  while (steps.length === 0) await new Promise((r) => setTimeout(r, 5))
  const before = steps.length
  await ner('Jonas Gahr Støre i Stavanger.').then(() => order.push('short'))
  // The short call waited for at most the step that ran when it came, then shared one.
  t.true(steps.length - before <= 2, `${steps.length - before} steps`)
  t.true(steps.slice(before).some((s) => s.calls === 2), 'a step held both calls')
  await long
  t.deepEqual(order, ['short', 'long'])
  ner.dispose()
})

test('onBatch that throws: the callers get their answers first, and nothing crashes', async (t) => {
  const warnings: string[] = []
  const onWarning = (w: Error) => warnings.push(w.message)
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  const ner = await pipeline(TINY_MODEL, { threads: 1, onBatch: () => { throw new Error('metrics down') } })
  const out = await Promise.all([ner('Oslo'), ner(['Bergen', 'Trondheim'])])
  t.is(out[1].length, 2)
  await new Promise((r) => setImmediate(r))
  t.true(warnings.some((w) => /onBatch threw: metrics down/.test(w)), warnings.join('; '))
  t.true(Array.isArray(await ner('Oslo')), 'the pipeline serves on')
  ner.dispose()
})

test('cancel(): every call in progress ends with an AbortError, later ones too, and the running step stops', async (t) => {
  const { ner, steps, ran } = await counted()
  const text = LONG.repeat(4)
  const { tokens } = await ner.cost(text)
  const calls = [ner(text), ner(text)]
  while (steps.length === 0) await new Promise((r) => setTimeout(r, 5))
  ner.cancel()
  for (const c of calls) t.is((await t.throwsAsync(c))!.name, 'AbortError')
  await t.throwsAsync(ner('Oslo'), { name: 'AbortError' })
  await new Promise((r) => setTimeout(r, 300))
  t.true(ran() < tokens, `${ran()} tokens ran of ${2 * tokens}`)
  ner.dispose()
})

test('an unknown option with a huge name fails at once with a bounded message (no quadratic suggestion)', async (t) => {
  const ner = await pipeline(TINY_MODEL, { threads: 1 })
  const key = 'x'.repeat(2_000_000)
  const err = await t.throwsAsync(ner('Oslo', { [key]: 1 } as never), { instanceOf: TypeError })
  t.true(err!.message.length < 300, `${err!.message.length} characters`)
  t.regex(err!.message, /unknown option 'x{64}…' \(2000000 characters\)/)
  // A short typo still gets its suggestion.
  t.regex((await t.throwsAsync(ner('Oslo', { aggregationStrategi: 'simple' } as never)))!.message, /did you mean 'aggregationStrategy'/)
  ner.dispose()
})

test("stride equal to a window's text budget is taken when the text fits, as transformers takes it", async (t) => {
  const ner = await pipeline(undefined, { threads: 1 })
  const budget = ner.model.modelMaxLength - ner.model.specialTokens
  // The bundled model: windows of 512 with BOS and EOS hold 510 text tokens.
  t.is(budget, 510)
  t.true(Array.isArray(await ner('Erna Solberg besøkte Oslo.', { stride: budget })))
  await t.throwsAsync(ner('Erna Solberg besøkte Oslo.', { stride: budget + 1 }), { instanceOf: RangeError, message: /stride must be less than the 510/ })
  // A text that must be cut: now the stride must be below the budget.
  await t.throwsAsync(ner('Oslo og Bergen. '.repeat(400), { stride: budget }), { instanceOf: RangeError, message: /stride must be less than the 510/ })
  ner.dispose()
})
