"""Bounds-checked reads of a .tflite flatbuffer, without the interpreter.

The interpreter does not verify the file it is given: a truncated or mangled one makes it read
past the end and crash the process. `Flatbuffer.check` walks every part the interpreter reads
and raises ValueError first; `Flatbuffer.kind` tells a dynamic-range model (hybrid kernels:
float activations, int8 weights) from a static one, for the refusal rules of
`device.runtime_safety`. Used by `device.runtime` before it builds an interpreter.
"""

from __future__ import annotations

import struct

from device.runtime_safety import DYNAMIC_RANGE, STATIC


class Flatbuffer:
    """Bounds-checked reads of a TFLite flatbuffer: enough to refuse a truncated or mangled
    file before the interpreter (which does not verify) reads past its end and crashes."""

    # Field indices of tflite's schema: Model.subgraphs = 2, Model.buffers = 4, Buffer.data = 0,
    # Buffer.offset = 1, Buffer.size = 2.
    def __init__(self, data: bytes):
        self.data = data

    def _u(self, fmt: str, pos: int) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise ValueError(f"reference to byte {pos} past the end ({len(self.data)} bytes)")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def _field(self, table: int, index: int) -> int | None:
        vtable = table - self._u("<i", table)
        vtable_size = self._u("<H", vtable)
        if 4 + 2 * index >= vtable_size:
            return None
        offset = self._u("<H", vtable + 4 + 2 * index)
        return table + offset if offset else None

    def _vector(self, table: int, index: int, element_size: int) -> tuple[int, int] | None:
        field = self._field(table, index)
        if field is None:
            return None
        start = field + self._u("<I", field)
        length = self._u("<I", start)
        if start + 4 + length * element_size > len(self.data):
            raise ValueError(f"a vector of {length} items runs past the end of the file")
        return start + 4, length

    def _tables(self, table: int, index: int) -> list[int]:
        vector = self._vector(table, index, 4)
        if vector is None:
            return []
        start, length = vector
        tables = [start + 4 * i + self._u("<I", start + 4 * i) for i in range(length)]
        for item in tables:
            self._field(item, 0)  # its vtable must be inside the file too
        return tables

    _FLOAT32, _UINT8, _INT8 = 0, 3, 9   # tflite TensorType

    def kind(self) -> str:
        """DYNAMIC_RANGE when some operator takes float activations with int8/uint8 weights
        (a hybrid kernel), else STATIC. Tensor.type = field 1, Operator.inputs = field 1."""
        model = self._u("<I", 0)
        for subgraph in self._tables(model, 2):
            types = []
            for tensor in self._tables(subgraph, 0):
                field = self._field(tensor, 1)
                types.append(self._u("<b", field) if field is not None else self._FLOAT32)
            for operator in self._tables(subgraph, 3):
                vector = self._vector(operator, 1, 4)
                if vector is None:
                    continue
                start, length = vector
                inputs = [types[i] for i in (self._u("<i", start + 4 * k) for k in range(length))
                          if 0 <= i < len(types)]
                if inputs and inputs[0] == self._FLOAT32 and (
                        self._INT8 in inputs or self._UINT8 in inputs):
                    return DYNAMIC_RANGE
        return STATIC

    def check(self) -> None:
        """Walk the parts the interpreter reads: model, subgraphs, tensors, operators, buffers,
        metadata and signatures. Raises ValueError at the first reference past the end."""
        model = self._u("<I", 0)
        self._tables(model, 1)                      # operator codes
        self._vector(model, 3, 1)                   # description
        self._vector(model, 5, 4)                   # metadata buffer indices
        self._tables(model, 6)                      # metadata
        for signature in self._tables(model, 7):    # signature defs
            for index in (0, 1):
                for tensor_map in self._tables(signature, index):
                    self._vector(tensor_map, 0, 1)
            self._vector(signature, 2, 1)
        for subgraph in self._tables(model, 2):
            for tensor in self._tables(subgraph, 0):
                self._vector(tensor, 0, 4)          # shape
                self._vector(tensor, 3, 1)          # name
                quantization = self._field(tensor, 4)
                if quantization is not None:
                    table = quantization + self._u("<I", quantization)
                    for index in (0, 1, 2, 3):      # min, max, scale, zero_point
                        self._vector(table, index, 8 if index == 3 else 4)
                self._vector(tensor, 6, 4)          # shape_signature
            self._vector(subgraph, 1, 4)
            self._vector(subgraph, 2, 4)
            for operator in self._tables(subgraph, 3):
                self._vector(operator, 1, 4)
                self._vector(operator, 2, 4)
            self._vector(subgraph, 4, 1)
        for buffer in self._tables(model, 4):
            self._vector(buffer, 0, 1)              # inline weights
            offset_field, size_field = self._field(buffer, 1), self._field(buffer, 2)
            if offset_field and size_field:
                end = self._u("<Q", offset_field) + self._u("<Q", size_field)
                if end > len(self.data):
                    raise ValueError("external weights run past the end of the file")
