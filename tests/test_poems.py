from poetrynow.poems import PoemNotFound, bundled_names, load_poem
from tests.support import temp_dir, write_poem
from tests.time_limit import SynchronousTestCase


class BundledPoemsTests(SynchronousTestCase):
    def test_the_set_has_the_articles_shape(self):
        sizes = sorted(len(load_poem(name).data) for name in bundled_names())
        self.assertEqual(len(sizes), 4)
        self.assertTrue(2800 <= sizes[-1] <= 3200, sizes)
        self.assertTrue(all(550 <= size <= 700 for size in sizes[:3]), sizes)

    def test_one_poem_has_non_ascii_utf8(self):
        non_ascii = [name for name in bundled_names() if any(byte > 127 for byte in load_poem(name).data)]
        self.assertTrue(non_ascii)
        for name in non_ascii:
            load_poem(name).data.decode("utf-8")  # valid UTF-8

    def test_by_name_and_by_path(self):
        by_name = load_poem("kettle")
        self.assertEqual(by_name.title, "Watching the Kettle")
        path = write_poem(temp_dir(self), "copy.txt", by_name.data)
        self.assertEqual(load_poem(path).data, by_name.data)

    def test_missing_poem_lists_the_bundled_names(self):
        error = self.assertRaises(PoemNotFound, load_poem, "no-such-poem")
        self.assertIn("no such poem: no-such-poem", str(error))
        self.assertIn("lighthouse", str(error))
