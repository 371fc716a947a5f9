// In a browser the bundled model is static files the page serves: it has no path, and
// `pipeline()` without a model says where to find them (src/browser/hub.ts).
export const BUNDLED_MODEL = 'the bundled model'
