export * from 'eurobert-ner-wasm32-wasi'
