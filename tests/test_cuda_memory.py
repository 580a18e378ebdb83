"""The caching GPU allocator's bookkeeping, tested without a GPU (fake driver calls).

The allocator itself (as Numba's memory manager) is exercised on a real GPU by
tests/cuda/test_cuda_backend.py::test_caching_allocator_reuses_blocks_on_a_real_gpu.
"""

import pytest

from tinygrad_lite.kernels.cuda.memory import BlockPool, rounded_size


class FakeDriver:
    """Hands out increasing fake pointers; can be told to run out of memory."""

    def __init__(self, capacity=None):
        self.next_pointer = 0x1000
        self.live: dict[int, int] = {}
        self.capacity = capacity
        self.freed: list[int] = []

    def alloc(self, size):
        if self.capacity is not None and sum(self.live.values()) + size > self.capacity:
            raise MemoryError("out of memory")
        pointer = self.next_pointer
        self.next_pointer += size
        self.live[pointer] = size
        return pointer

    def free(self, pointer):
        self.freed.append(pointer)
        del self.live[pointer]


def test_sizes_round_up_to_512_bytes_then_2_mib():
    assert rounded_size(1) == 512 and rounded_size(512) == 512 and rounded_size(513) == 1024
    assert rounded_size(0) == 512
    assert rounded_size(1 << 20) == 1 << 20
    assert rounded_size((1 << 20) + 1) == 2 << 20
    assert rounded_size(5 << 20) == 6 << 20


def test_a_given_back_block_is_reused_for_the_same_rounded_size():
    driver = FakeDriver()
    pool = BlockPool(driver.alloc, driver.free)
    first, block = pool.take(1000)
    assert block == 1024 and pool.stats["cuda_allocs"] == 1
    pool.give_back(first, block)
    again, _ = pool.take(1020)  # rounds to the same 1024-byte block
    assert again == first and pool.stats["reused"] == 1 and pool.stats["cuda_allocs"] == 1
    other, _ = pool.take(3000)  # a different size: a new driver allocation
    assert other != first and pool.stats["cuda_allocs"] == 2
    assert pool.stats["allocated_bytes"] == 1024 + 3072 and pool.stats["cached_bytes"] == 0


def test_blocks_in_use_are_never_handed_out_twice():
    driver = FakeDriver()
    pool = BlockPool(driver.alloc, driver.free)
    pointers = [pool.take(512)[0] for _ in range(5)]
    assert len(set(pointers)) == 5


def test_out_of_memory_releases_the_cache_and_retries_once():
    driver = FakeDriver(capacity=4096)
    pool = BlockPool(driver.alloc, driver.free)
    a, block_a = pool.take(2048)
    b, block_b = pool.take(2048)
    pool.give_back(a, block_a)
    pool.give_back(b, block_b)
    big, _ = pool.take(4096)  # only fits once the two cached blocks are freed
    assert sorted(driver.freed) == sorted([a, b])
    assert pool.stats["cached_bytes"] == 0 and pool.stats["allocated_bytes"] == 4096
    with pytest.raises(MemoryError):
        pool.take(512)  # nothing cached left to release: the error reaches the caller
    assert big in driver.live


def test_release_cached_frees_only_unused_blocks():
    driver = FakeDriver()
    pool = BlockPool(driver.alloc, driver.free)
    kept, _ = pool.take(512)
    spare, block = pool.take(512)
    pool.give_back(spare, block)
    assert pool.release_cached() == 512
    assert driver.freed == [spare] and kept in driver.live


def test_install_is_skipped_when_the_user_chose_numbas_allocator(monkeypatch):
    from tinygrad_lite.kernels.cuda import memory

    monkeypatch.setenv("TINYGRAD_LITE_CUDA_ALLOCATOR", "numba")
    assert memory.install() is False
