extension Dictionary where Key == Int {
    /// The value for a batch size, made by `make` the first time: every model and trainer allocates its work
    /// tensors once per batch size it meets and reuses them, so steady-state training allocates nothing.
    mutating func reused(_ size: Int, make: () throws -> Value) rethrows -> Value {
        if let value = self[size] { return value }
        let value = try make()
        self[size] = value
        return value
    }
}
