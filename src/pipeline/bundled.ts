// The compact Norwegian NER model shipped inside the package (tools/train_compact.py).
import * as path from 'node:path'

export const BUNDLED_MODEL = path.join(__dirname, '..', '..', 'models', 'norne-compact')
