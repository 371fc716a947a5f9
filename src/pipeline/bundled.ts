// The compact Norwegian NER model shipped inside the package (tools/train_compact.py); in a
// packaged Electron app, the copy unpacked beside app.asar (see asar.ts).
import * as path from 'node:path'

import { unpacked } from './asar'

export const BUNDLED_MODEL = unpacked(path.join(__dirname, '..', '..', 'models', 'norne-compact'))
