"""Broken: puzzle A blocks forever in C (a thread joined that waits on a lock nobody releases); its puzzle D is
correct and must still be graded."""

import threading

from tests.broken._naive_d import memory_efficient_linear  # noqa: F401


def dequantize_nf4(weight, quant_state):
    lock = threading.Lock()
    lock.acquire()
    waiter = threading.Thread(target=lock.acquire)
    waiter.start()
    waiter.join()
