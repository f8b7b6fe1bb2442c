;; hostile: exports memory and alloc, but no entrypoint (`call` / `reduce`).
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat
  )
