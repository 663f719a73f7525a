"""Make the collection importable both as ``plugins.module_utils.herd`` (repo
root on sys.path) and as ``ansible_collections.herd.cluster`` (a symlink tree
under .build/collections, also used by ansible-playbook and ansible-test)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")


def ensure_collection_link() -> str:
    link = os.path.join(COLLECTIONS, "ansible_collections", "herd", "cluster")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        try:
            os.symlink(ROOT, link)
        except FileExistsError:
            pass
    return COLLECTIONS


ensure_collection_link()
for path in (ROOT, COLLECTIONS):
    if path not in sys.path:
        sys.path.insert(0, path)
